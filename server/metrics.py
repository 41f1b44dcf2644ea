"""Prometheus metrics of one app instance (its own registry, no globals)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector


class FanoutCounts(Protocol):
    """What the hub counts as it fans events out (read at scrape time)."""

    frames_encoded: int
    frames_queued: int


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.connections = Gauge(
            "ting_connections", "Open WebSocket connections", registry=self.registry
        )
        self.events = Counter(
            "ting_events_total", "Events committed to the log", ["kind"], registry=self.registry
        )
        self.commands = Counter(
            "ting_commands_total",
            "Commands handled",
            ["command", "transport", "result"],
            registry=self.registry,
        )
        self.errors = Counter(
            "ting_errors_total", "Errors returned to clients", ["code"], registry=self.registry
        )
        self.closes = Counter(
            "ting_socket_closes_total",
            "Sockets closed by the server",
            ["code"],
            registry=self.registry,
        )
        self.command_seconds = Histogram(
            "ting_command_seconds",
            "Time from a command's arrival to its ack",
            ["command"],
            buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0),
            registry=self.registry,
        )
        # (command, transport) -> its "ok" counter and its histogram: looked up
        # for every command, and `labels()` is slow next to the rest of an ack.
        self._done: dict[tuple[str, str], tuple[Counter, Histogram]] = {}

    def command_done(self, command: str, transport: str) -> tuple[Counter, Histogram]:
        """The "ok" counter and the duration histogram of a command over a transport."""
        key = (command, transport)
        pair = self._done.get(key)
        if pair is None:
            pair = self._done[key] = (
                self.commands.labels(command, transport, "ok"),
                self.command_seconds.labels(command),
            )
        return pair

    def watch_fanout(self, fanout: FanoutCounts) -> None:
        """Export the hub's own counters, read when /metrics is scraped."""
        self.registry.register(_FanoutCollector(fanout))


class _FanoutCollector(Collector):
    """Event frames encoded vs queued, read from the hub at scrape time.

    An event is encoded once per audience (readers who see the same
    projection of it) and queued once per connection that may see it.
    """

    def __init__(self, fanout: FanoutCounts) -> None:
        self._fanout = fanout

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(
            "ting_frames_encoded",
            "Event frames projected and encoded (once per audience of an event)",
            value=self._fanout.frames_encoded,
        )
        yield CounterMetricFamily(
            "ting_frames_queued",
            "Event frames queued to connections (once per connection that may see them)",
            value=self._fanout.frames_queued,
        )
