"""create_app(settings): the routes and the lifespan. The only wiring module."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

from server.domain.errors import DomainError
from server.endpoints import http, pages, websocket
from server.hub.backends import backend_for
from server.hub.hub import Hub
from server.metrics import Metrics
from server.services import demo
from server.services.context import Services
from server.services.limits import RateLimiter
from server.services.retention import Retention
from server.services.votes import VoteCoalescer
from server.settings import Settings
from server.store.database import create_engine, migrate
from server.store.writer import Writer

log = logging.getLogger("ting")


class _App(Starlette):
    """Starlette, with WebSockets dispatched ahead of its middleware and router.

    Neither the middleware (security headers, error pages: HTTP only) nor the
    router does anything for a socket, but each of their frames would stay on
    the socket's stack for as long as it is open: with thousands of idle
    sockets, that is a good part of the memory of each.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            scope["app"] = self
            await websocket.socket_app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings, *, seed_demo: bool = False) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url)
        await migrate(engine)
        metrics = Metrics()
        hub = Hub(backend_for("memory://"), presence_interval=settings.presence_interval)
        metrics.watch_fanout(hub)

        def publish(events: list) -> None:  # type: ignore[type-arg]
            # Counted per kind and batch: `labels()` costs more than the rest
            # of an event's way to the hub.
            kinds: dict[str, int] = {}
            for event in events:
                kind = event.kind._value_
                kinds[kind] = kinds.get(kind, 0) + 1
            for kind, count in kinds.items():
                metrics.events.labels(kind).inc(count)
            hub.publish(events)

        writer = Writer(engine, publish, batch_size=settings.writer_batch)
        services = Services(
            settings=settings,
            engine=engine,
            writer=writer,
            hub=hub,
            metrics=metrics,
            post_limiter=RateLimiter(settings.post_burst, settings.post_rate),
            vote_limiter=RateLimiter(settings.vote_burst, settings.vote_rate),
            votes=VoteCoalescer(writer, settings.vote_interval),
        )
        app.state.services = services
        retention = Retention(writer, settings.event_retention)
        await hub.start()
        await writer.start()
        await services.votes.start()
        await retention.start()
        try:
            if seed_demo:
                app.state.demo = await demo.seed(services)
            yield
        finally:
            hub.close_all(1001, "server going away")
            await retention.stop()
            await services.votes.stop()
            await writer.stop()
            await hub.stop()
            await engine.dispose()

    app = _App(
        routes=[*http.routes, *pages.routes()],
        lifespan=lifespan,
        exception_handlers={DomainError: http.domain_error_handler},
    )
    app.add_middleware(pages.SecurityHeaders)
    return app
