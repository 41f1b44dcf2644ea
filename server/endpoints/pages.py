"""The pages: static ES modules and HTML from web/, with strict security headers."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def web_root() -> Path:
    """web/ of the source tree, or its copy inside an installed wheel."""
    installed = Path(__file__).resolve().parent.parent / "_web"
    if installed.is_dir():
        return installed
    return Path(__file__).resolve().parent.parent.parent / "web"


# No inline script or style, no eval, nothing from other origins. Trusted
# Types make the browser refuse every HTML-string sink (innerHTML and kin):
# the pages put user text in as text nodes, and the only HTML they build is
# the basis, which goes through DOMPurify (the one allowed policy).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'; "
    "require-trusted-types-for 'script'; trusted-types dompurify"
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}
# Sent only over HTTPS (a browser ignores it on plain HTTP anyway): one year.
HSTS = (b"strict-transport-security", b"max-age=31536000")

PAGES = {
    "citizen": "citizen.html",
    "moderator": "moderator.html",
    "speaker": "speaker.html",
    "screen": "screen.html",
}


class SecurityHeaders:
    """Adds the security headers to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.raw = [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        extra = [*self.raw, HSTS] if scope.get("scheme") == "https" else self.raw

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _page(name: str) -> Response:
    return FileResponse(web_root() / name, headers={"cache-control": "no-cache"})


async def home(request: Request) -> Response:
    return _page("index.html")


async def citizen(request: Request) -> Response:
    return _page(PAGES["citizen"])


async def role_page(request: Request) -> Response:
    page = PAGES.get(request.path_params["role"])
    if page is None:
        return Response("Not found", status_code=404)
    return _page(page)


async def join_link(request: Request) -> Response:
    """The QR code's target: /j/CODE goes to the join page with the code filled in."""
    code = "".join(c for c in request.path_params["code"].upper() if c.isalnum())[:16]
    return RedirectResponse(f"/?code={code}", status_code=302)


def routes() -> list[Route | Mount]:
    return [
        Route("/", home),
        Route("/j/{code}", join_link),
        Route("/m/{meeting_id}", citizen),
        Route("/m/{meeting_id}/{role}", role_page),
        Mount("/static", StaticFiles(directory=web_root(), check_dir=False), name="static"),
    ]
