"""The console's token: when it is needed, where a request may carry it, and the ASGI gate that checks it.

A browser opens the console once as /?token=T; the gate answers with a redirect to / that sets an HttpOnly,
SameSite=Strict cookie, so the token leaves the address bar and later requests carry it by themselves.
Scripts send `Authorization: Bearer T`. Requests that change something (POST) also need the header
`X-Persense-Console: 1`, which a page of another site cannot send without a CORS preflight this server
never grants, so a web page the operator visits cannot drive the console behind their back.
"""

from __future__ import annotations

import ipaddress
import secrets

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse

COOKIE = "persense_console"
CSRF_HEADER = "x-persense-console"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_token(configured: str | None, host: str) -> tuple[str | None, bool]:
    """-> (the token in force or None, whether it was generated here and must be shown to the operator once)."""
    if configured:
        return configured, False
    if is_loopback(host):
        return None, False
    return secrets.token_urlsafe(24), True


class TokenGate:
    """ASGI middleware: requests outside `open_paths` need the token (when there is one); POSTs need the
    console header in any case."""

    def __init__(self, app, token: str | None, open_paths: frozenset[str]):
        self.app = app
        self.token = token
        self.open_paths = open_paths

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if request.method == "POST" and request.headers.get(CSRF_HEADER) != "1":
            response = JSONResponse({"ok": False, "error": f"POST needs the header {CSRF_HEADER}: 1"}, 403)
            await response(scope, receive, send)
            return
        if self.token is None or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        query = request.query_params.get("token")
        if self._valid(query) and request.method == "GET":
            # The token moves from the address bar into a cookie the page's requests carry.
            response = RedirectResponse(scope["path"], 303)
            response.set_cookie(COOKIE, self.token, httponly=True, samesite="strict")
            await response(scope, receive, send)
            return
        bearer = request.headers.get("authorization", "")
        given = bearer[7:] if bearer.lower().startswith("bearer ") else request.cookies.get(COOKIE)
        if self._valid(given):
            await self.app(scope, receive, send)
            return
        message = "this console needs its token: open it as /?token=TOKEN (printed at start, or the configured " \
                  "stream.console.token), or send the header 'Authorization: Bearer TOKEN'"
        response = (PlainTextResponse(message, 401) if scope["path"] == "/"
                    else JSONResponse({"ok": False, "error": message}, 401))
        await response(scope, receive, send)

    def _valid(self, given: str | None) -> bool:
        return bool(given) and secrets.compare_digest(given.encode(), self.token.encode())
