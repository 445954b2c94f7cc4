"""The processor's ASGI app: /metrics, /healthz, /readyz and, when enabled, the operator console at /.

The console's routes talk to the processor only through `ConsoleBackend`; its static page is plain HTML,
CSS and JavaScript shipped in this package (streamer/console/static).
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Protocol

from prometheus_client import make_asgi_app
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from streamer.console.auth import TokenGate
from streamer.console.common import STATIC, SupportBusy
from streamer.console.headers import SecurityHeaders
from streamer.errors import UserError, first_line

log = logging.getLogger(__name__)

Probe = Callable[[], tuple[bool, dict]]
PROBES = frozenset({"/healthz", "/readyz"})
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "[::1]"]


class ConsoleBackend(Protocol):
    """What the console needs of a running processor (StreamProcessor implements it)."""

    cameras: list[str]
    live: object  # streamer.console.live.LiveView
    supports: object  # streamer.stream.support_history.SupportHistory
    persense: object  # streamer.persense.pipeline.PerSense: its engines pick objects
    max_image_pixels: int  # uploads larger than this are refused from their header, before decoding
    max_image_bytes: int  # and uploads whose decoded array would be larger than this

    def camera_statuses(self) -> dict[str, dict]: ...

    def is_paused(self) -> bool: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def replace_support(self, image, mask, undoing: bool = False, camera: str | None = None,
                        product: str | None = None): ...

    def supports_of(self, camera: str | None, product: str | None = None) -> object:
        """The SupportHistory of `camera` (None: of the first camera, `supports`), of its `product` (None: the
        default one)."""
        ...

    def on_pipeline(self, fn: Callable[[], object]) -> object:
        """Run fn where the pipeline's engines may be used (between frames); its result or exception."""
        ...


def build_app(registry, health: Probe, ready: Probe, *, console: ConsoleBackend | None = None, options=None,
              token: str | None = None) -> Starlette:
    """The whole HTTP surface of one processor.

    Args:
        registry: what /metrics exposes (a prometheus_client registry or a collector with collect()).
        health, ready: /healthz and /readyz probes -> (ok, details).
        console: the processor, or None to serve metrics and probes only.
        options: a ConsoleConfig (token policy for /metrics, live frame rate, upload limit).
        token: the token in force, or None when none is needed (loopback without a configured one).
    """
    routes = [
        Route("/healthz", _probe(health)),
        Route("/readyz", _probe(ready)),
        # An ASGI app at exactly /metrics (a Mount would redirect /metrics to /metrics/).
        Route("/metrics", _AsgiEndpoint(make_asgi_app(registry)), methods=["GET"]),
    ]
    if console is not None:
        from streamer.console.routes import console_routes  # the console's modules only when it is served

        routes += console_routes(console, options)
        routes.append(Mount("/static", app=StaticFiles(directory=STATIC), name="static"))
    open_paths = PROBES if options is not None and options.metrics_need_token else PROBES | {"/metrics"}
    named = dict(getattr(options, "tokens", None) or {})
    middleware = [Middleware(SecurityHeaders), Middleware(TokenGate, token=token, open_paths=open_paths, named=named)]
    if console is not None and token is None and not named:
        # No token on loopback: only a loopback Host is answered, so a page of another site that rebinds its
        # name to 127.0.0.1 (DNS rebinding) cannot pass for the console's own origin.
        middleware.insert(1, Middleware(TrustedHostMiddleware, allowed_hosts=LOOPBACK_HOSTS))
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={ClientDisconnect: _client_left, SupportBusy: _busy, UserError: _user_error,
                            404: _not_found, 500: _internal_error},
    )
    return app


class _AsgiEndpoint:
    """Makes Starlette's Route treat a plain async function as an ASGI app rather than a request handler."""

    def __init__(self, app):
        self._app = app

    async def __call__(self, scope, receive, send) -> None:
        await self._app(scope, receive, send)


def _probe(probe: Probe):
    async def endpoint(request: Request) -> JSONResponse:
        ok, details = probe()
        return JSONResponse({"ok": ok, **details}, 200 if ok else 503)

    return endpoint


async def _user_error(request: Request, exc: UserError) -> JSONResponse:
    return JSONResponse({"ok": False, "error": first_line(exc)}, 400)


async def _busy(request: Request, exc: UserError) -> JSONResponse:
    return JSONResponse({"ok": False, "error": first_line(exc)}, 409)


async def _not_found(request: Request, exc) -> JSONResponse:
    return JSONResponse({"ok": False, "error": "not found: try /, /metrics, /healthz, /readyz"}, 404)


_LEFT_LOG_INTERVAL_S = 10.0
_left = {"last": -_LEFT_LOG_INTERVAL_S, "unlogged": 0}


async def _client_left(request: Request, exc: ClientDisconnect) -> Response:
    # A client that goes away in the middle of its request (a closed tab, a dropped link, a probe) is the
    # client's business, not an error of ours: one line, at most every 10 s, never a traceback. Nothing can be
    # answered; the empty response is for Starlette (uvicorn drops it on a closed connection).
    now = time.monotonic()
    if now - _left["last"] >= _LEFT_LOG_INTERVAL_S:
        more = f" (and {_left['unlogged']} more since the last note)" if _left["unlogged"] else ""
        log.info("http: a client left during %s %s before its request was read%s", request.method,
                 request.url.path[:80], more)
        _left["last"], _left["unlogged"] = now, 0
    else:
        _left["unlogged"] += 1
    return Response(status_code=400)


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    # A handler's bug must not take the server down; the page shows one line, the log the whole story.
    log.error("http: %s %s failed", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"ok": False, "error": "internal error (see the processor's log)"}, 500)
