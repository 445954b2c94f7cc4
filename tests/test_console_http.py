"""The console's HTTP API against a real processor on the simulator (embedded engines), over 127.0.0.1.

Browser tests are in test_console_browser.py; these drive the same API without a browser.
"""

from __future__ import annotations

import socket
import threading
import time

import cv2
import numpy as np
import pytest

from console_helpers import HEADER, distractor_point, get_json, http, multipart, post
from streamer.engine_factory import build_engines
from streamer.config import Config, EnginesConfig
from streamer.console import server as http_server
from streamer.console.app import build_app
from streamer.console.auth import resolve_token
from streamer.simulator import ConveyorSimulator
from streamer.stream.config import StreamConfig
from streamer.stream.processor import StreamProcessor
from streamer.stream.support import initial_support
from waiting import wait_until

SIM = "sim:?objects=20&distractors=6&fps=15"
TOKEN = "a-long-enough-console-token"


def _processor(tmp_path, console: dict | None = None) -> StreamProcessor:
    stream = StreamConfig.model_validate({
        "sources": [{"uri": SIM, "camera_id": "belt"}],
        "publish": {"endpoint": "tcp://127.0.0.1:*"},
        "control": {"endpoint": None},
        "metrics": {"port": 0},
        "console": console or {},
        "cache_dir": str(tmp_path),
    })
    support = initial_support(None, None, stream.sources)
    return StreamProcessor(Config(stream=stream), build_engines(EnginesConfig()), support)


@pytest.fixture
def running(tmp_path):
    proc = _processor(tmp_path)
    proc.start()
    base = proc.http.base_url
    assert wait_until(lambda: get_json(base + "/api/status")[1]["cameras"]["belt"]["frame_index"] is not None, 30)
    yield proc, base
    proc.stop()


def _png(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", image)[1].tobytes()


def test_pick_a_distractor_apply_and_undo(running):
    proc, base = running
    first = proc.persense.support.support_id
    status, frozen = post(base + "/api/cameras/belt/freeze")
    assert status == 200, frozen
    x, y = distractor_point(ConveyorSimulator(640, 480, 20, 6), frozen["frame_index"])
    status, pick = post(base + "/api/pick", {"freeze_id": frozen["freeze_id"], "x": x, "y": y})
    assert status == 200, pick
    x0, y0, x1, y1 = pick["bbox"]
    assert x0 <= x < x1 and y0 <= y < y1 and 50 < pick["area"] < 640 * 480 * 0.05
    status, _, preview = http(base + pick["preview"])
    assert status == 200 and preview[:2] == b"\xff\xd8"

    status, applied = post(base + "/api/support/apply", {"freeze_id": frozen["freeze_id"], "pick_id": pick["pick_id"]})
    assert status == 200, applied
    assert applied["support_id"] != first and proc.persense.support.support_id == applied["support_id"]
    # The stream now counts the other kind: the simulator knows how many are in view.
    simulator = ConveyorSimulator(640, 480, 20, 6)

    def counts_distractors() -> bool:
        shown = proc.live.latest("belt")
        if shown is None or shown.support_id != applied["support_id"]:
            return False
        return abs(shown.result.count - simulator.frame(shown.frame.index).distractor_count) <= 1

    assert wait_until(counts_distractors, 20), "results with the new support do not count the distractors"
    status, undone = post(base + "/api/support/undo")
    assert (status, undone["support_id"]) == (200, first)
    assert post(base + "/api/support/undo")[0] == 400  # the first support has nothing before it
    status = get_json(base + "/api/status")[1]
    assert status["support_id"] == first and status["can_undo"] is False


def test_bad_picks_and_uploads_get_one_clear_line_and_change_nothing(running):
    proc, base = running
    before = proc.persense.support.support_id
    _, frozen = post(base + "/api/cameras/belt/freeze")
    fid = frozen["freeze_id"]
    status, reply = post(base + "/api/pick", {"freeze_id": fid, "x": 700, "y": 10})
    assert status == 400 and "outside the 640x480 image" in reply["error"]
    status, reply = post(base + "/api/pick", {"freeze_id": fid, "x": -1, "y": 10})
    assert status == 400 and "outside" in reply["error"]
    status, reply = post(base + "/api/pick", {"freeze_id": fid, "x": "a"})
    assert status == 400 and '"x" and "y"' in reply["error"]
    status, reply = post(base + "/api/pick", {"freeze_id": "nope", "x": 1, "y": 1})
    assert status == 400 and "freeze" in reply["error"]
    status, reply = post(base + "/api/support/apply", {"freeze_id": fid, "pick_id": "nope"})
    assert status == 400 and "click the object again" in reply["error"]
    status, _, data = http(base + "/api/pick", b"[" * 70000, headers=HEADER, method="POST")
    assert status == 400 and b"over 65536 bytes" in data
    status, _, data = http(base + "/api/pick", b"not json", headers=HEADER, method="POST")
    assert status == 400 and b"JSON object" in data

    image = np.full((40, 60, 3), 90, np.uint8)
    mask = np.zeros((40, 60), np.uint8)
    mask[10:30, 20:40] = 255
    for files, words in (
        ({"image": b"this is not an image", "mask": _png(mask)}, "support image"),
        ({"image": _png(image), "mask": _png(mask[:30])}, "support mask is 60x30 but the support image is 60x40"),
        ({"image": _png(image)}, "upload two files"),
        ({"image": _png(image), "mask": _png(np.zeros_like(mask))}, "empty"),
    ):
        body, headers = multipart(files)
        status, _, data = http(base + "/api/support/upload", body, headers=headers, method="POST")
        assert status == 400 and words in data.decode(), data
    assert proc.persense.support.support_id == before
    assert proc.worker.alive() and proc.http.alive()

    body, headers = multipart({"image": _png(image), "mask": _png(mask)})
    status, _, data = http(base + "/api/support/upload", body, headers=headers, method="POST")
    assert status == 200 and proc.persense.support.support_id != before
    # A support set through the control path is a step to undo too: the two paths share one history.
    proc._cmd_set_support({}, [_png(image), _png(np.roll(mask, 5, axis=1))])
    assert post(base + "/api/support/undo")[0] == 200 and post(base + "/api/support/undo")[0] == 200
    assert proc.persense.support.support_id == before


def test_upload_over_the_limit_is_refused_before_it_is_read(tmp_path):
    proc = _processor(tmp_path, {"max_upload_bytes": 2048})
    proc.start()
    try:
        body, headers = multipart({"image": b"x" * 5000, "mask": b"y"})
        status, _, data = http(proc.http.base_url + "/api/support/upload", body, headers=headers, method="POST")
        assert status == 400 and b"the limit is 2048" in data
    finally:
        proc.stop()


def test_live_view_renders_only_while_watched(running):
    proc, base = running
    processed = proc.worker.processed.get("belt", 0)
    assert wait_until(lambda: proc.worker.processed.get("belt", 0) > processed + 5, 20)
    assert proc.live.renders == 0 and proc.live.watchers == 0  # frames flowed, nothing was drawn
    with socket.create_connection((proc.http.host, proc.http.port), timeout=10) as conn:
        conn.sendall(b"GET /api/cameras/belt/live.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        seen = b""
        while seen.count(b"\xff\xd8") < 3:
            chunk = conn.recv(65536)
            assert chunk, f"the stream ended: {seen[:200]!r}"
            seen += chunk
        assert b"multipart/x-mixed-replace" in seen and proc.live.watchers == 1
    assert wait_until(lambda: proc.live.watchers == 0, 10), "a closed stream still counts as a watcher"
    renders, processed = proc.live.renders, proc.worker.processed.get("belt", 0)
    assert renders >= 3
    assert wait_until(lambda: proc.worker.processed.get("belt", 0) > processed + 5, 20)
    assert proc.live.renders <= renders + 1  # at most the one in flight as the viewer left


def test_posts_need_the_console_header_and_a_tokenless_console_answers_loopback_hosts_only(running):
    proc, base = running
    status, _, data = http(base + "/api/pause", b"{}", method="POST")
    assert status == 403 and b"x-persense-console" in data
    # DNS rebinding: a foreign name pointed at 127.0.0.1 is not the console's origin.
    assert http(base + "/api/status", headers={"Host": "attacker.example:80"})[0] == 400
    status, _, data = http(base + "/api/pause", b"{}", headers={**HEADER, "Host": "attacker.example"}, method="POST")
    assert (status, data) == (400, b"Invalid host header") and not proc.is_paused()
    assert http(base + "/api/status", headers={"Host": f"localhost:{proc.http.port}"})[0] == 200


def test_pause_resume_and_download(running):
    proc, base = running
    assert post(base + "/api/pause") == (200, {"ok": True, "paused": True}) and proc.is_paused()
    assert get_json(base + "/api/status")[1]["paused"] is True
    assert post(base + "/api/resume")[0] == 200 and not proc.is_paused()
    status, headers, data = http(base + "/api/cameras/belt/download")
    assert status == 200 and headers["content-type"] == "application/zip"
    import io
    import json
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as bundle:
        assert sorted(bundle.namelist()) == ["frame.png", "overlay.jpg", "result.json"]
        doc = json.loads(bundle.read("result.json"))
    assert doc["schema"] == "persense.result/1" and doc["count"] == len(doc["instances"]) and doc["camera"] == "belt"
    assert http(base + "/api/cameras/nope/download")[0] == 400


def test_a_token_protects_the_console_and_optionally_metrics(tmp_path):
    proc = _processor(tmp_path, {"token": TOKEN})
    proc.start()
    try:
        base = proc.http.base_url
        assert http(base + "/")[0] == 401
        assert get_json(base + "/api/status")[0] == 401
        assert http(base + "/api/status", headers={"Authorization": "Bearer wrong-token-of-some-length"})[0] == 401
        assert http(base + "/api/status", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200
        assert http(base + "/healthz")[0] == 200 and http(base + "/metrics")[0] == 200
        # ?token= moves into a cookie: a redirect, and the page then loads with the cookie alone.
        opener = __import__("urllib.request").request.build_opener(
            __import__("urllib.request").request.HTTPCookieProcessor())
        with opener.open(base + f"/?token={TOKEN}", timeout=10) as resp:
            assert resp.status == 200 and b"PerSense console" in resp.read()
            assert resp.url == base + "/"
    finally:
        proc.stop()
    proc = _processor(tmp_path, {"token": TOKEN, "metrics_need_token": True})
    proc.start()
    try:
        base = proc.http.base_url
        assert http(base + "/metrics")[0] == 401
        assert http(base + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200
    finally:
        proc.stop()


def test_token_policy():
    assert resolve_token(None, "127.0.0.1") == (None, False)
    assert resolve_token(None, "::1") == (None, False)
    assert resolve_token(TOKEN, "127.0.0.1") == (TOKEN, False)
    token, generated = resolve_token(None, "0.0.0.0")
    assert generated and len(token) >= 24 and resolve_token(None, "0.0.0.0")[0] != token


class _SlowBackend:
    """A console backend whose replace_support waits until released: two applies meet for certain."""

    cameras = ["belt"]

    def __init__(self):
        from streamer.console.live import LiveView
        from streamer.stream.support_history import SupportHistory

        self.live = LiveView(self.cameras)
        self.supports = SupportHistory()
        self.entered, self.release = threading.Event(), threading.Event()
        self.applied = 0

    def replace_support(self, image, mask, undoing=False, camera=None):
        self.entered.set()
        assert self.release.wait(30)
        self.applied += 1
        return type("S", (), {"support_id": f"s{self.applied}"})()


def test_a_second_browser_applying_at_the_same_moment_is_refused(monkeypatch):
    from streamer.sources.base import Frame
    from streamer.types import SegmentationResult

    backend = _SlowBackend()
    image = np.zeros((48, 64, 3), np.uint8)
    backend.live.offer(Frame(image, 7, time.time(), "belt"), SegmentationResult(64, 48, []), "s0")
    from streamer.console.frozen import FrozenFrames
    from streamer.persense.pick import Pick

    mask = np.zeros((48, 64), bool)
    mask[10:20, 10:20] = True
    # The frozen frame and its pick as a click would have left them.
    frozen = FrozenFrames()
    made = frozen.add("belt", 7, image)
    pick_id = made.add_pick(Pick(mask, 0.9))
    monkeypatch.setattr("streamer.console.routes.FrozenFrames", lambda: frozen)  # the pages share them
    app = build_app(lambda: [], lambda: (True, {}), lambda: (True, {}), console=backend,
                    options=StreamConfig().console)
    server = http_server.HttpServer(app, "127.0.0.1", 0)
    server.start()
    try:
        url = server.base_url + "/api/support/apply"
        payload = {"freeze_id": made.freeze_id, "pick_id": pick_id}
        first: list = []
        thread = threading.Thread(target=lambda: first.append(post(url, payload)))
        thread.start()
        assert backend.entered.wait(10)
        status, reply = post(url, payload)
        assert status == 409 and "another support change" in reply["error"] and backend.applied == 0
        backend.release.set()
        thread.join(10)
        assert first == [(200, {"ok": True, "support_id": "s1"})] and backend.applied == 1
    finally:
        backend.release.set()
        server.stop()


def test_half_requests_are_dropped_after_the_head_deadline():
    app = build_app(lambda: [], lambda: (True, {}), lambda: (True, {}))
    server = http_server.HttpServer(app, "127.0.0.1", 0, options=StreamConfig().console.model_copy(
        update={"head_timeout_s": 0.3}))
    server.start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finished
            assert conn.recv(1024) == b""  # closed by the server, not by the 10 s client timeout
        assert http(server.base_url + "/healthz")[0] == 200
    finally:
        server.stop()


def test_a_generated_token_is_shown_once_on_the_terminal_and_never_logged(capsys, caplog):
    from types import SimpleNamespace

    from streamer.cli.run import _announce_http

    token, generated = resolve_token(None, "0.0.0.0")
    proc = SimpleNamespace(http=SimpleNamespace(base_url="http://0.0.0.0:9108"), console_http=None, http_token=token,
                           http_token_generated=generated, stream=StreamConfig())
    with caplog.at_level("DEBUG"):
        _announce_http(proc)
    err = capsys.readouterr().err
    assert err.count(token) == 1 and "/?token=" in err
    assert all(token not in record.getMessage() for record in caplog.records)
    assert any("needs the token" in record.getMessage() for record in caplog.records)


def test_a_port_in_use_is_one_clear_error():
    from streamer.errors import UserError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(UserError, match=f"cannot serve HTTP on 127.0.0.1:{port}: Address already in use"):
            http_server.HttpServer(build_app(lambda: [], lambda: (True, {}), lambda: (True, {})), "127.0.0.1", port)


def test_an_object_cut_by_the_border_is_picked_with_a_warning_and_a_huge_mask_is_refused():
    from console_helpers import inner_point
    from engines.interfaces import DecoderOutput
    from streamer.errors import UserError
    from streamer.persense.pick import pick_object

    engines = build_engines(EnginesConfig())
    scene = ConveyorSimulator(640, 480, 20, 6).frame(3)
    edge = [label for label in np.unique(scene.labels[:, 0]) if label and (scene.labels == label).sum() > 300]
    assert edge, "no object cut by the left border in this frame"
    cut = scene.labels == edge[0]
    found = pick_object(engines, scene.image, inner_point(cut))
    assert found.warning and "border" in found.warning and (found.mask & cut).sum() > 0.5 * found.area

    class EverythingDecoder:  # a decoder whose mask is the whole frame: the background, not one object
        def decode_points(self, embedding, points, guidance=None):
            return DecoderOutput(None, np.ones((1, 1), np.float32), (60.0, 80.0), np.ones((60, 80), np.int32))

    engines.decoder = EverythingDecoder()
    with pytest.raises(UserError, match="covers 100% of the image: that is the background"):
        pick_object(engines, scene.image, (100.0, 100.0))


def test_the_console_on_a_port_of_its_own(tmp_path):
    proc = _processor(tmp_path, {"port": 0})
    proc.start()
    try:
        metrics, console = proc.http.base_url, proc.console_http.base_url
        assert metrics != console
        assert http(metrics + "/metrics")[0] == 200 and http(metrics + "/")[0] == 404
        assert http(console + "/")[0] == 200 and get_json(console + "/api/status")[0] == 200
        assert get_json(metrics + "/healthz")[1]["threads"]["console"] is True
    finally:
        proc.stop()
    assert not proc.console_http.alive()


def test_two_cameras_each_with_its_own_undo_and_support_picture(tmp_path):
    stream = StreamConfig.model_validate({
        "sources": [{"uri": SIM, "camera_id": "left"}, {"uri": SIM, "camera_id": "right"}],
        "publish": {"endpoint": "tcp://127.0.0.1:*"}, "control": {"endpoint": None}, "metrics": {"port": 0},
        "cache_dir": str(tmp_path),
    })
    proc = StreamProcessor(Config(stream=stream), build_engines(EnginesConfig()),
                           initial_support(None, None, stream.sources))
    proc.start()
    try:
        base = proc.http.base_url
        assert wait_until(lambda: get_json(base + "/api/status")[1]["cameras"]["right"]["frame_index"] is not None, 30)
        status, frozen = post(base + "/api/cameras/right/freeze")
        x, y = distractor_point(ConveyorSimulator(640, 480, 20, 6), frozen["frame_index"])
        status, pick = post(base + "/api/pick", {"freeze_id": frozen["freeze_id"], "x": x, "y": y})
        assert status == 200, pick
        status, applied = post(base + "/api/support/apply",
                               {"freeze_id": frozen["freeze_id"], "pick_id": pick["pick_id"], "camera": "right"})
        assert status == 200, applied
        cameras = get_json(base + "/api/status")[1]["cameras"]
        assert (cameras["left"]["can_undo"], cameras["right"]["can_undo"]) == (False, True)
        pictures = {camera: http(f"{base}/api/support.jpg?camera={camera}")[2] for camera in ("left", "right")}
        assert pictures["left"][:2] == pictures["right"][:2] == b"\xff\xd8" and pictures["left"] != pictures["right"]
        status, headers, body = http(f"{base}/api/support.jpg?camera=nope")
        assert status == 400 and b"no camera 'nope'" in body
        status, undone = post(base + "/api/support/undo", {"camera": "right"})
        assert status == 200 and undone["support_id"] != applied["support_id"]
        assert get_json(base + "/api/status")[1]["cameras"]["right"]["can_undo"] is False
    finally:
        proc.stop()


def test_picks_on_the_belt_mostly_come_with_a_note_and_picks_of_products_do_not():
    from scipy import ndimage

    from streamer.persense.pick import pick_object
    from streamer.errors import UserError

    engines = build_engines(EnginesConfig())
    scene = ConveyorSimulator(640, 480, 30, 8).frame(10)
    free = ndimage.distance_transform_edt((scene.labels == 0) & ~scene.distractors) > 12
    ys, xs = np.nonzero(free)
    rng = np.random.default_rng(0)
    noted = refused = 0
    for i in rng.choice(len(xs), 8, replace=False):
        try:
            noted += pick_object(engines, scene.image, (int(xs[i]), int(ys[i]))).warning is not None
        except UserError:
            refused += 1
    assert noted + refused >= 5
    for k in range(1, 7):
        yy, xx = np.nonzero(scene.labels == k)
        x, y = int(xx.mean()), int(yy.mean())
        if scene.labels[y, x] != k or xx.min() == 0 or yy.min() == 0 or xx.max() == 639 or yy.max() == 479:
            continue  # a concave or cut-off visible part: not a clean product click
        assert pick_object(engines, scene.image, (x, y)).warning is None
