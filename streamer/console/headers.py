"""Security headers on every HTTP response (ASGI middleware, so it covers routes, errors and static files).

Every response: `X-Content-Type-Options: nosniff` (a browser never guesses a JSON or JPEG reply into a page).
HTML responses: no framing by another site (`X-Frame-Options: DENY` and CSP `frame-ancestors 'none'`, so a
page elsewhere cannot overlay the console's buttons and trick a click: clickjacking), and a content policy
that lets the page load only its own script, style and images (the console has no inline script or style).
"""

from __future__ import annotations

CSP = ("default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")
_ALL = [(b"x-content-type-options", b"nosniff")]
_HTML = [(b"x-frame-options", b"DENY"), (b"content-security-policy", CSP.encode())]


class SecurityHeaders:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in _NAMES]
                content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                headers += _ALL + (_HTML if content_type.startswith(b"text/html") else [])
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


_NAMES = {name for name, _ in _ALL + _HTML}
