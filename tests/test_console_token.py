"""The console's token gate and access rules (streamer.console.auth, app.build_app), from the attacker's side.

Requests are driven straight through the ASGI app (no socket, no server thread): each test is milliseconds, so
the mutation run (tools/mutation.py) can afford them for every mutant of the gate.
"""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry

from streamer.console.app import build_app
from streamer.console.auth import COOKIE, TokenGate, is_loopback, resolve_token
from streamer.stream.config import ConsoleConfig

TOKEN = "Zq7-secret_console_token_0123456789"


async def _echo(scope, receive, send) -> None:
    """The protected app: answers 200 'inside' to whatever reaches it."""
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"inside"})


def call(app, path="/api/status", method="GET", headers=None, query="", host="127.0.0.1:9108"):
    """One HTTP request through an ASGI app -> (status, {header: value}, body)."""
    raw = [(b"host", host.encode())] + [(k.lower().encode(), v.encode("latin-1")) for k, v in (headers or {}).items()]
    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode(), "root_path": "", "query_string": query.encode("latin-1"),
             "headers": raw, "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 9108)}
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body


@pytest.fixture
def gate():
    return TokenGate(_echo, TOKEN, frozenset({"/healthz"}))


# Near misses an attacker would try: every one must be refused wherever a token can be carried.
NEAR_MISSES = {
    "prefix": TOKEN[:-1],
    "half": TOKEN[: len(TOKEN) // 2],
    "one character": TOKEN[:1],
    "suffix": TOKEN[1:],
    "extended": TOKEN + "x",
    "case": TOKEN.swapcase(),
    "leading space": " " + TOKEN,
    "trailing space": TOKEN + " ",
    "trailing newline": TOKEN + "\n",
    "last character changed": TOKEN[:-1] + "8",
    "empty": "",
}


@pytest.mark.parametrize("name", NEAR_MISSES)
def test_a_near_miss_token_is_refused_as_bearer_cookie_and_query(gate, name):
    wrong = NEAR_MISSES[name]
    status, _, body = call(gate, headers={"Authorization": f"Bearer {wrong}"})
    assert status == 401 and body != b"inside"
    if wrong.strip() == wrong:  # a cookie's value is read without surrounding blanks (RFC 6265): no near miss
        assert call(gate, headers={"Cookie": f"{COOKIE}={wrong}"})[0] == 401
    status, headers, _ = call(gate, path="/", query=f"token={wrong}")
    assert status == 401 and "set-cookie" not in headers and "location" not in headers


def test_the_exact_token_opens_every_way_it_may_be_carried(gate):
    assert call(gate, headers={"Authorization": f"Bearer {TOKEN}"}) == (200, {"content-type": "text/plain"},
                                                                       b"inside")
    assert call(gate, headers={"Authorization": f"bearer {TOKEN}"})[0] == 200  # the scheme is case-insensitive
    assert call(gate, headers={"Cookie": f"{COOKIE}={TOKEN}"})[2] == b"inside"
    # ?token= on a GET: a 303 to the same path that moves the token into an HttpOnly, SameSite=Strict cookie.
    status, headers, body = call(gate, path="/live", query=f"token={TOKEN}")
    assert status == 303 and headers["location"] == "/live" and body != b"inside"
    cookie = headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}={TOKEN};") and "HttpOnly" in cookie and "SameSite=strict" in cookie


def test_no_credentials_answer_401_with_how_to_open_the_console(gate):
    status, headers, body = call(gate, path="/")
    assert status == 401 and headers["content-type"].startswith("text/plain") and b"/?token=TOKEN" in body
    status, headers, body = call(gate, path="/api/status")
    assert status == 401 and headers["content-type"] == "application/json"
    assert body.startswith(b'{"ok":false,"error":"this console needs its token')
    # Something that is not a bearer header does not count, even carrying the token.
    assert call(gate, headers={"Authorization": f"Basic {TOKEN}"})[0] == 401
    assert call(gate, headers={"Authorization": f"Bearer{TOKEN}"})[0] == 401
    assert call(gate, headers={"Authorization": f"Token {TOKEN}"})[0] == 401


def test_a_token_in_the_query_of_a_post_is_no_credential(gate):
    # A form on another site could carry ?token= in its action; only GETs turn it into a cookie, nothing passes.
    headers = {"X-Persense-Console": "1"}
    status, answer, body = call(gate, path="/api/pause", method="POST", query=f"token={TOKEN}", headers=headers)
    assert status == 401 and "set-cookie" not in answer and body != b"inside"


def test_a_post_needs_the_console_header_even_with_the_token_or_without_one():
    for token in (TOKEN, None):
        app = TokenGate(_echo, token, frozenset())
        auth = {"Authorization": f"Bearer {TOKEN}"}
        for header in (None, "0", "true", " 1", "11"):
            headers = dict(auth) if header is None else {**auth, "X-Persense-Console": header}
            status, answer, body = call(app, method="POST", path="/api/pause", headers=headers)
            assert status == 403 and answer["content-type"] == "application/json" and b"x-persense-console: 1" in body
        assert call(app, method="POST", path="/api/pause", headers={**auth, "X-Persense-Console": "1"})[0] == 200


def test_open_paths_and_a_tokenless_gate_let_requests_through(gate):
    assert call(gate, path="/healthz") == (200, {"content-type": "text/plain"}, b"inside")
    assert call(gate, path="/healthz/x")[0] == 401  # an exact path, not a prefix
    assert call(TokenGate(_echo, None, frozenset()), path="/api/status")[2] == b"inside"


def test_websocket_and_lifespan_scopes_pass_untouched():
    seen = []

    async def inner(scope, receive, send):
        seen.append(scope["type"])

    gate = TokenGate(inner, TOKEN, frozenset())
    for kind in ("websocket", "lifespan"):
        asyncio.run(gate({"type": kind, "path": "/", "headers": []}, None, None))
    assert seen == ["websocket", "lifespan"]


def test_loopback_and_token_policy():
    assert is_loopback("localhost") and is_loopback("127.0.0.1") and is_loopback("127.8.9.1") and is_loopback("::1")
    for host in ("0.0.0.0", "192.168.1.5", "::", "localhost.attacker.example", "LOCALHOST ", "", "127.0.0.1.nip.io"):
        assert not is_loopback(host), host
    assert resolve_token(None, "localhost") == (None, False)
    token, generated = resolve_token("", "10.0.0.1")  # an empty configured token is no token: one is generated
    assert generated and len(token) == 32  # token_urlsafe(24): 24 random bytes
    assert resolve_token(TOKEN, "10.0.0.1") == (TOKEN, False)


# -- build_app's access rules -------------------------------------------------------------------------------------
def _probe_ok():
    return True, {"state": "running"}


def _app(console=None, token=None, metrics_need_token=False):
    options = ConsoleConfig(metrics_need_token=metrics_need_token)
    return build_app(CollectorRegistry(), _probe_ok, lambda: (False, {"state": "starting"}), console=console,
                     options=options, token=token)


def test_probes_are_always_open_and_metrics_only_when_allowed():
    app = _app(token=TOKEN)
    assert call(app, path="/healthz")[:1] == (200,) and call(app, path="/readyz")[0] == 503
    assert call(app, path="/metrics")[0] == 200
    locked = _app(token=TOKEN, metrics_need_token=True)
    assert call(locked, path="/healthz")[0] == 200
    assert call(locked, path="/metrics")[0] == 401
    assert call(locked, path="/metrics", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200
    # Without options, /metrics stays open as by default.
    bare = build_app(CollectorRegistry(), _probe_ok, _probe_ok, token=TOKEN)
    assert call(bare, path="/metrics")[0] == 200 and call(bare, path="/api/status")[0] == 401


def _backend():
    return SimpleNamespace(live=SimpleNamespace(), cameras=["belt"])


def test_a_tokenless_console_answers_loopback_host_names_only():
    app = _app(console=_backend())
    for host in ("127.0.0.1:9108", "localhost:9108", "[::1]:9108", "localhost"):
        assert call(app, path="/healthz", host=host)[0] == 200, host
    for host in ("attacker.example", "127.0.0.1.attacker.example", "0.0.0.0:9108", "192.168.1.5"):
        status, _, body = call(app, path="/healthz", host=host)
        assert (status, body) == (400, b"Invalid host header"), host
    # With a token the Host is not the guard (a remote console is reached by any name); without a console
    # (metrics and probes only) nothing can be driven, so any Host is answered.
    assert call(_app(console=_backend(), token=TOKEN), path="/healthz", host="console.example")[0] == 200
    assert call(_app(), path="/healthz", host="console.example")[0] == 200


def test_a_post_without_the_console_header_is_refused_with_its_reason(gate):
    status, _, body = call(gate, "/api/support", method="POST", headers={"Authorization": f"Bearer {TOKEN}"})
    assert status == 403
    assert json.loads(body) == {"ok": False, "error": "POST needs the header x-persense-console: 1"}


def test_the_refusal_says_how_to_send_the_token(gate):
    status, _, body = call(gate, "/api/status")
    assert status == 401
    error = json.loads(body)
    assert error["ok"] is False
    assert error["error"].endswith("or send the header 'Authorization: Bearer TOKEN'")


def test_each_request_runs_as_its_tokens_name():
    """The audit trail's "who" (streamer.archive.audit.current_actor) during the request: the named token's name,
    "console" for stream.console.token, "local" on an open path without a token."""
    from streamer.archive.audit import current_actor

    seen = []

    async def record(scope, receive, send):
        seen.append(current_actor())
        await _echo(scope, receive, send)

    gate = TokenGate(record, TOKEN, frozenset({"/healthz"}), named={"alice": "alice-token-0123456789abcdef"})
    assert call(gate, headers={"Authorization": "Bearer alice-token-0123456789abcdef"})[0] == 200
    assert call(gate, headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200
    assert call(gate, "/healthz")[0] == 200
    assert call(gate, "/healthz", headers={"Authorization": "Bearer alice-token-0123456789abcdef"})[0] == 200
    assert seen == ["alice", "console", "local", "alice"]  # an open path still knows who asks, where a token is sent
    assert current_actor() == "local"  # and nobody acts once the request is over


def test_other_scopes_pass_through_with_their_own_channels(gate):
    """Lifespan (and any non-HTTP) scopes reach the app untouched, with the server's receive and send."""
    got = {}

    async def app(scope, receive, send):
        got["receive"], got["send"] = receive, send

    async def receive():
        return {"type": "lifespan.startup"}

    async def send(message):
        return None

    asyncio.run(TokenGate(app, TOKEN, frozenset())({"type": "lifespan"}, receive, send))
    assert got == {"receive": receive, "send": send}
