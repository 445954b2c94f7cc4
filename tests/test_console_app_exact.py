"""The processor's HTTP surface (streamer.console.app.build_app) exactly: its error answers, its probes, /metrics
and the note it logs when clients leave mid-request. Driven straight through the ASGI app (no socket, no server
thread): milliseconds a case, so tools/mutation.py runs them for every mutant of app.py. The token gate and the
access rules are in test_console_token.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry, Counter
from starlette.requests import ClientDisconnect
from starlette.routing import Route

import streamer.console.app as app_module
from streamer.console.app import build_app
from streamer.console.common import SupportBusy
from streamer.errors import UserError
from streamer.stream.config import ConsoleConfig
from test_console_token import TOKEN, call


def _raising(exc):
    def probe():
        raise exc

    return probe


def _app(health, ready=lambda: (True, {}), **kwargs):
    return build_app(CollectorRegistry(), health, ready, **kwargs)


def test_probes_answer_their_state_and_details():
    app = _app(lambda: (True, {"state": "running", "cameras": 2}), lambda: (False, {"state": "starting"}))
    status, headers, body = call(app, "/healthz")
    assert (status, headers["content-type"], json.loads(body)) == (
        200, "application/json", {"ok": True, "state": "running", "cameras": 2})
    status, _, body = call(app, "/readyz")
    assert (status, json.loads(body)) == (503, {"ok": False, "state": "starting"})


def test_metrics_expose_the_given_registry_at_exactly_metrics():
    registry = CollectorRegistry()
    Counter("persense_test_things", "things", registry=registry).inc(3)
    app = build_app(registry, lambda: (True, {}), lambda: (True, {}))
    status, headers, body = call(app, "/metrics")
    assert status == 200 and {k.lower(): v for k, v in headers.items()}["content-type"].startswith("text/plain")
    assert b"persense_test_things_total 3.0" in body
    assert call(app, "/metrics", method="POST", headers={"X-Persense-Console": "1"})[0] == 405


def test_errors_are_one_json_line_with_their_status():
    assert call(_app(_raising(UserError("bad input\nsecond line"))), "/healthz")[::2] == (
        400, b'{"ok":false,"error":"bad input"}')
    assert call(_app(_raising(SupportBusy("another support change is under way"))), "/healthz")[::2] == (
        409, b'{"ok":false,"error":"another support change is under way"}')
    status, headers, body = call(_app(lambda: (True, {})), "/nowhere")
    assert (status, headers["content-type"], json.loads(body)) == (
        404, "application/json", {"ok": False, "error": "not found: try /, /metrics, /healthz, /readyz"})


def test_a_handlers_bug_is_a_500_with_one_line_and_the_whole_story_in_the_log(caplog):
    app = _app(_raising(RuntimeError("the secret detail")))
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": "/healthz", "raw_path": b"/healthz", "root_path": "", "query_string": b"",
             "headers": [(b"host", b"127.0.0.1:9108")], "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 9108)}
    with caplog.at_level(logging.ERROR, logger="streamer.console.app"):
        with pytest.raises(RuntimeError):  # Starlette re-raises for the server to log; the answer is sent first
            asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert start["status"] == 500
    assert json.loads(body) == {"ok": False, "error": "internal error (see the processor's log)"}
    assert b"secret detail" not in body
    [record] = caplog.records
    assert record.getMessage() == "http: GET /healthz failed" and record.exc_info[1].args == ("the secret detail",)


def test_clients_that_leave_mid_request_are_noted_at_most_every_ten_seconds(monkeypatch, caplog):
    now = [1000.0]
    monkeypatch.setattr(app_module, "time", SimpleNamespace(monotonic=lambda: now[0]))
    monkeypatch.setattr(app_module, "_left", {"last": -app_module._LEFT_LOG_INTERVAL_S, "unlogged": 0})
    app = _app(_raising(ClientDisconnect()))
    long_path = "/healthz" + "x" * 100
    with caplog.at_level(logging.INFO, logger="streamer.console.app"):
        assert call(app, "/healthz")[0] == 400
        for seconds in (1000.0, 1005.0, 1009.99):  # within ten seconds of the note: counted, not logged
            now[0] = seconds
            assert call(app, "/healthz")[0] == 400
        now[0] = 1010.0
        assert call(app, "/healthz")[0] == 400
        now[0] = 1020.0
        gone = build_app(CollectorRegistry(), _raising(ClientDisconnect()), lambda: (True, {}))
        gone.router.routes.append(Route(long_path, app_module._probe(_raising(ClientDisconnect()))))
        assert call(gone, long_path)[0] == 400
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", "http: a client left during GET /healthz before its request was read"),
        ("INFO", "http: a client left during GET /healthz before its request was read (and 3 more since the last "
                 "note)"),
        ("INFO", f"http: a client left during GET {long_path[:80]} before its request was read"),
    ]
    assert app_module._left == {"last": 1020.0, "unlogged": 0}


def test_the_console_token_guards_what_is_not_open():
    app = _app(lambda: (True, {}), token=TOKEN)
    assert call(app, "/nowhere")[0] == 401  # the gate answers before the router
    assert call(app, "/nowhere", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 404


def _console():
    """What build_app and the console's routes read of a processor before any request touches it."""
    return SimpleNamespace(live=SimpleNamespace(), cameras=["belt"])


def test_the_console_serves_its_static_files_and_passes_its_options_to_its_routes():
    options = ConsoleConfig(max_upload_bytes=2048)
    app = _app(lambda: (True, {}), console=_console(), options=options)
    status, headers, body = call(app, "/static/api.js")
    assert status == 200 and headers["content-type"].startswith("text/javascript") and len(body) > 0
    assert call(app, "/static/nothing.js")[0] == 404
    status, _, body = call(app, "/api/support/upload", method="POST",
                           headers={"X-Persense-Console": "1", "Content-Length": "4096"})
    assert (status, json.loads(body)["error"]) == (
        400, "the upload is 4096 bytes; the limit is 2048 (stream.console.max_upload_bytes)")


def test_named_tokens_from_the_options_open_the_console():
    alice = "alice-token-0123456789abcdef"
    app = _app(lambda: (True, {}), options=ConsoleConfig(tokens={"alice": alice}))  # no main token
    assert call(app, "/nowhere")[0] == 401
    assert call(app, "/nowhere", headers={"Authorization": f"Bearer {alice}"})[0] == 404


def test_a_foreign_host_is_refused_before_anything_else_is_said():
    # A page that rebinds its name to 127.0.0.1 learns nothing, not even that a POST needs the console header.
    app = _app(lambda: (True, {}), console=_console())
    status, _, body = call(app, "/api/pause", method="POST", host="attacker.example")
    assert (status, body) == (400, b"Invalid host header")
