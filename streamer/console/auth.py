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

from streamer.archive.audit import acting_as

COOKIE = "persense_console"
MAIN_TOKEN_NAME = "console"  # the audit trail's name for stream.console.token
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
    console header in any case. Named tokens (stream.console.tokens) open it too; each request runs as its token's
    name (streamer.archive.audit), "local" where no token is needed and none is given."""

    def __init__(self, app, token: str | None, open_paths: frozenset[str], named: dict[str, str] | None = None):
        self.app = app
        self.open_paths = open_paths
        self._names = {**(named or {})}
        if token is not None:
            self._names[MAIN_TOKEN_NAME] = token

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if request.method == "POST" and request.headers.get(CSRF_HEADER) != "1":
            response = JSONResponse({"ok": False, "error": f"POST needs the header {CSRF_HEADER}: 1"}, 403)
            await response(scope, receive, send)
            return
        bearer = request.headers.get("authorization", "")
        given = bearer[7:] if bearer.lower().startswith("bearer ") else request.cookies.get(COOKIE)
        who = self._name_of(given)
        if not self._names or scope["path"] in self.open_paths:
            with acting_as(who):
                await self.app(scope, receive, send)
            return
        query = request.query_params.get("token")
        if self._name_of(query) and request.method == "GET":
            # The token moves from the address bar into a cookie the page's requests carry.
            response = RedirectResponse(scope["path"], 303)
            response.set_cookie(COOKIE, query, httponly=True, samesite="strict")
            await response(scope, receive, send)
            return
        if who:
            with acting_as(who):
                await self.app(scope, receive, send)
            return
        message = "this console needs its token: open it as /?token=TOKEN (printed at start, or the configured " \
                  "stream.console.token), or send the header 'Authorization: Bearer TOKEN'"
        response = (PlainTextResponse(message, 401) if scope["path"] == "/"
                    else JSONResponse({"ok": False, "error": message}, 401))
        await response(scope, receive, send)

    def _name_of(self, given: str | None) -> str | None:
        """The name of the token `given` (None: no token, or not one of ours); every token is compared."""
        if not given:
            return None
        found = None
        for name, token in self._names.items():
            if secrets.compare_digest(given.encode(), token.encode()):
                found = name
        return found
