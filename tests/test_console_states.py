"""The console's states in a real browser (issue 25): pause, a foreign support (product not present, with its
support warning), a source gone, and the processor stopped each show on the page (the state's words, the image's
PAUSED / NOT PRESENT / NO SIGNAL, greyed figures) soon after they happen. A second test loses a real RTSP camera:
the GStreamer RTSP server feeding it (tests/peers/rtsp_server.py on 127.0.0.1) is killed while the page watches;
it is skipped, with the RTSP source tests' reason, where that server cannot run (.ci/run installs it).

Each state is waited for up to a generous bound (a loaded machine must not fail it on time alone); the time each
took from the moment it happened is printed (the issue asks for under 2 s; the page polls every 0.5 s). With
PERSENSE_UPDATE_DOCS=1 it also writes docs/console-<state>.png, the README's screenshots of the states.
"""

from __future__ import annotations

import os
import signal
import time

import cv2
import numpy as np
import pytest

from console_helpers import get_json, http, multipart
from test_console_browser import ROOT, _live_shown, _text, browser, pytestmark, run  # noqa: F401 (fixtures, skip)
from tests.peers.procs import RtspServer, rtsp_server_missing
from waiting import wait_until

_RTSP_MISSING = rtsp_server_missing()

BOUND_S = 15.0  # generous: the page polls every 0.5 s; what it takes is printed and asserted loosely below
CONFIG = """
stream:
  sources:
    - uri: "sim:?objects=20&fps=10"
      camera_id: cam0
    - uri: "sim:?objects=20&fps=10&frames=40"
      camera_id: cam1
"""


def _png(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", image)[1].tobytes()


def _noise_support() -> tuple[bytes, bytes]:
    """Noise: its outline is no stronger than its surroundings, which draws a support warning."""
    image = np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)
    mask = np.zeros((200, 200), np.uint8)
    mask[50:150, 50:150] = 255
    return _png(image), _png(mask)


def _foreign_support() -> tuple[bytes, bytes]:
    """A cyan checkerboard: nothing on the simulator's belt looks like it."""
    yy, xx = np.mgrid[:200, :200]
    image = np.full((200, 200, 3), 30, np.uint8)
    image[(xx // 10 + yy // 10) % 2 == 0] = (0, 250, 250)  # BGR, as cv2 writes it
    mask = np.zeros((200, 200), np.uint8)
    mask[40:160, 40:160] = 255
    return _png(image), _png(mask)


def _upload(base: str, support: tuple[bytes, bytes]) -> None:
    body, headers = multipart({"image": support[0], "mask": support[1]}, {"camera": "cam0"})
    status, _, reply = http(base + "/api/support/upload", body, headers=headers, method="POST", timeout=60)
    assert status == 200, reply


def _page_state(driver) -> tuple[str, str, bool]:
    """(the state shown, the image's label, whether the figures are greyed)."""
    return tuple(driver.execute_script(
        "const b = document.getElementById('banner');"
        "return [document.getElementById('state').dataset.state || '', b.hidden ? '' : b.textContent,"
        " document.getElementById('figures').classList.contains('stale')];"))


def _shows(driver, state: str, label: str, since: float, timings: dict, shot: str | None) -> None:
    def now_shown() -> bool:
        shown, image_label, _ = _page_state(driver)
        return shown == state and image_label == label

    assert wait_until(now_shown, BOUND_S, 0.05), f"{state}: the page shows {_page_state(driver)}"
    timings[state] = round(time.monotonic() - since, 2)
    if shot and os.environ.get("PERSENSE_UPDATE_DOCS") == "1":
        # Half size: four states side by side in the README's table.
        page = cv2.imdecode(np.frombuffer(driver.get_screenshot_as_png(), np.uint8), cv2.IMREAD_COLOR)
        small = cv2.resize(page, (page.shape[1] // 2, page.shape[0] // 2), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(ROOT / "docs" / f"console-{shot}.png"), small)


def test_the_page_walks_the_states(run, browser, tmp_path):
    config = tmp_path / "two-cameras.yaml"
    config.write_text(CONFIG)
    r = run("--config", str(config), source=None)
    r.wait_http()
    browser.get(r.base + "/")
    assert wait_until(lambda: _live_shown(browser), 90, 0.05), "no live view"
    assert wait_until(lambda: _page_state(browser)[0] == "streaming", 30), _page_state(browser)
    assert _page_state(browser)[1:] == ("", False)  # streaming: nothing on the image, the figures live
    timings: dict[str, float] = {}

    # Pause: the image says PAUSED; after the pause the figures are of the last frame and go grey with their age.
    browser.find_element("id", "pause").click()
    _shows(browser, "paused", "PAUSED", time.monotonic(), timings, "paused")
    assert wait_until(lambda: _page_state(browser)[2] and "s ago" in _text(browser, "age"), BOUND_S)
    browser.find_element("id", "pause").click()
    assert wait_until(lambda: _page_state(browser) == ("streaming", "", False), BOUND_S), _page_state(browser)

    # A support with a warning: the warning shows while that support is in force, and goes with it.
    _upload(r.base, _noise_support())
    assert wait_until(lambda: "outline" in _text(browser, "warnings"), BOUND_S), _text(browser, "warnings")
    # A foreign support on cam0: frames come, nothing matches: NOT PRESENT.
    _upload(r.base, _foreign_support())
    _shows(browser, "not_present", "NOT PRESENT", time.monotonic(), timings, "not-present")
    # The noise support's frames may show NOT PRESENT too: the page drops its warning on its next status poll.
    assert wait_until(lambda: not browser.find_element("id", "warnings").is_displayed(), BOUND_S), \
        _text(browser, "warnings")

    # cam1's source ends (a camera gone): NO SIGNAL on its view, its figures greyed with their age.
    browser.find_element("id", "camera").send_keys("cam1")
    assert wait_until(lambda: get_json(r.base + "/api/status")[1]["cameras"]["cam1"]["state"] == "ended", 90, 0.1)
    _shows(browser, "no_signal", "NO SIGNAL", time.monotonic(), timings, "no-signal")
    assert _page_state(browser)[2], "the figures of a camera gone are greyed"

    # The processor stops: the page says it does not answer.
    r.proc.send_signal(signal.SIGINT)
    r.proc.wait(30)
    log = r.log.read_text()  # a browser was watching: still a clean stop
    assert r.proc.returncode == 0 and "Traceback" not in log and " ERROR " not in log, log[-3000:]
    _shows(browser, "unreachable", "NO SIGNAL", time.monotonic(), timings, "unreachable")
    assert _text(browser, "state") == "processor unreachable" and _page_state(browser)[2]
    print(f"seconds from each state's cause to the page showing it: {timings}")
    # The 2 s, with room for a loaded machine; the printed figures are the measurement.
    assert max(timings.values()) < 2 * 2.0, timings


def _ball_support() -> tuple[bytes, bytes]:
    """What the RTSP server shows (videotestsrc pattern=ball, 320x240): a white disc of radius 19 on black."""
    image = np.zeros((240, 320, 3), np.uint8)
    mask = np.zeros((240, 320), np.uint8)
    cv2.circle(image, (160, 120), 19, (255, 255, 255), -1, cv2.LINE_AA)
    cv2.circle(mask, (160, 120), 19, 255, -1)
    return _png(image), _png(mask)


@pytest.fixture
def rtsp_server():
    peer = RtspServer()
    try:
        yield peer.start()
    finally:
        peer.stop()


@pytest.mark.skipif(_RTSP_MISSING is not None, reason=f"RTSP test server unavailable: {_RTSP_MISSING}")
def test_the_page_shows_an_rtsp_source_gone(run, browser, rtsp_server, tmp_path):
    """A live RTSP camera whose server goes away: the page says it is reconnecting, the image NO SIGNAL, the
    figures greyed, soon after the server dies (the issue asks for under 2 s). Default source and supervisor
    options, as an operator's config would have them."""
    image, mask = tmp_path / "ball.png", tmp_path / "ball-mask.png"
    for path, data in zip((image, mask), _ball_support()):
        path.write_bytes(data)
    config = tmp_path / "rtsp-camera.yaml"
    config.write_text(f"stream:\n  sources:\n    - uri: \"{rtsp_server.url}\"\n      camera_id: cam0\n")
    r = run("--config", str(config), "--support", str(image), "--support-mask", str(mask), source=None)
    r.wait_http()
    browser.get(r.base + "/")
    assert wait_until(lambda: _live_shown(browser), 90, 0.05), "no live view"
    assert wait_until(lambda: _page_state(browser) == ("streaming", "", False), 30), _page_state(browser)
    index = _text(browser, "frame-index")
    assert wait_until(lambda: _text(browser, "frame-index") != index, BOUND_S), "frames do not come"
    assert get_json(r.base + "/api/status")[1]["cameras"]["cam0"]["state"] == "streaming"
    timings: dict[str, float] = {}

    # The server dies (SIGKILL: its connections drop): from the moment of the kill to the page showing it.
    killed = time.monotonic()
    rtsp_server.stop()
    _shows(browser, "reconnecting", "NO SIGNAL", killed, timings, None)
    assert _text(browser, "state") == "reconnecting to the source"
    assert wait_until(lambda: _page_state(browser)[2], BOUND_S), "the figures of a lost source are greyed"
    camera = get_json(r.base + "/api/status")[1]["cameras"]["cam0"]
    assert camera["state"] in ("connecting", "reconnecting", "stalled"), camera  # retrying, not given up
    log = r.log.read_text()
    assert r.proc.poll() is None and "Traceback" not in log, log[-3000:]  # the processor outlives the server
    print(f"seconds from the RTSP server's death to the page showing it: {timings}")
    # The 2 s, with room for a loaded machine; the printed figure is the measurement.
    assert timings["reconnecting"] < 2 * 2.0, timings
