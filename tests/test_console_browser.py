"""The operator console in a real browser: headless Chromium (Debian's chromium + chromium-driver) driven by
Selenium, against `persense run` on the simulator as a real process, results read on the ZeroMQ bus.

Skipped with a reason where Chromium, its driver or selenium is missing (.ci/run installs them). A failing
test leaves a screenshot in test-screenshots/. With PERSENSE_UPDATE_DOCS=1 the first test also writes
docs/console-pick.png and docs/console.png, the README's screenshots.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import zmq

from console_helpers import distractor_point, get_json
from streamer.simulator import ConveyorSimulator
from waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
try:
    import selenium  # noqa: F401

    SELENIUM = True
except ImportError:
    SELENIUM = False

_missing = [name for name, ok in (("chromium", CHROMIUM), ("chromium-driver", CHROMEDRIVER), ("selenium", SELENIUM))
            if not ok]
pytestmark = pytest.mark.skipif(bool(_missing), reason=f"no headless browser: {', '.join(_missing)} missing "
                                "(apt-get install chromium chromium-driver; pip install selenium)")

OBJECTS, DISTRACTORS, FPS = 30, 8, 15
SIM = f"sim:?objects={OBJECTS}&distractors={DISTRACTORS}&fps={FPS}"
TOKEN = "browser-test-token-0123456789"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Run:
    """`persense run` on the simulator in its own process, on free ports of 127.0.0.1."""

    def __init__(self, tmp_path: Path, *extra: str, source: str | None = SIM):
        self.ports = {"pub": _free_port(), "ctl": _free_port(), "http": _free_port()}
        self.base = f"http://127.0.0.1:{self.ports['http']}"
        self.log = tmp_path / "run.log"
        args = [sys.executable, "-m", "streamer", "run", *(["--source", source] if source else []),
                "--publish", f"tcp://127.0.0.1:{self.ports['pub']}", "--control", f"tcp://127.0.0.1:{self.ports['ctl']}",
                "--metrics-port", str(self.ports["http"]), "--cache-dir", str(tmp_path / "cache"), *extra]
        self.started = time.monotonic()
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(args, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                                         stdout=log, stderr=subprocess.STDOUT)

    def wait_http(self) -> None:
        def up() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", self.ports["http"]), timeout=1):
                    return True
            except OSError:
                return False

        assert wait_until(up, 60, 0.05), self.log.read_text()[-2000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def browser(request):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    yield driver
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        folder = ROOT / "test-screenshots"
        folder.mkdir(exist_ok=True)
        path = folder / f"{request.node.name}.png"
        driver.save_screenshot(str(path))
        print(f"screenshot of the failing page: {path}")
    driver.quit()


@pytest.fixture
def run(tmp_path):
    runs: list[Run] = []

    def start(*extra: str, source: str | None = SIM) -> Run:
        runs.append(Run(tmp_path, *extra, source=source))
        return runs[-1]

    yield start
    for r in runs:
        r.stop()


def _text(driver, element_id: str) -> str:
    return driver.find_element("id", element_id).text


def _live_shown(driver) -> bool:
    return driver.execute_script(
        "const img = document.getElementById('live');"
        "return !img.hidden && img.complete && img.naturalWidth > 0;") and _text(driver, "count") != "–"


def _subscriber(port: int) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"tcp://127.0.0.1:{port}")
    sock.setsockopt(zmq.SUBSCRIBE, b"persense/")
    return sock


def _results(sock: zmq.Socket, timeout_s: float):
    """Result headers off the bus until `timeout_s` passes with none."""
    while sock.poll(int(timeout_s * 1000)):
        _, header, *_ = sock.recv_multipart()
        doc = json.loads(header)
        if doc["schema"] == "persense.result/1":
            yield doc


def test_watch_the_line_and_pick_a_distractor_with_one_click(run, browser):
    """The issue's "done when": live segmentation in the page, a click on a distractor, Apply, and the bus
    counting distractors."""
    from selenium.webdriver.common.action_chains import ActionChains

    r = run()
    r.wait_http()
    bus = _subscriber(r.ports["pub"])
    opened = time.monotonic()
    browser.get(r.base + "/")
    assert wait_until(lambda: _live_shown(browser), 60, 0.05), "no live segmentation in the page"
    live_after_s, since_start_s = time.monotonic() - opened, time.monotonic() - r.started

    # The live image changes (a screenshot of the element, twice, some frames apart).
    live = browser.find_element("id", "live")
    first_index, first_shot = _text(browser, "frame-index"), live.screenshot_as_png
    assert wait_until(lambda: _text(browser, "frame-index") != first_index, 20)
    assert wait_until(lambda: live.screenshot_as_png != first_shot, 20), "the live image does not change"
    assert get_json(r.base + "/api/status")[1]["watchers"] == 1

    browser.find_element("id", "freeze").click()
    frozen = browser.find_element("id", "frozen")
    assert wait_until(lambda: frozen.is_displayed() and browser.execute_script(
        "return arguments[0].complete && arguments[0].naturalWidth > 0", frozen), 20)
    index = int(frozen.get_attribute("data-frame-index"))
    x, y = distractor_point(ConveyorSimulator(640, 480, OBJECTS, DISTRACTORS), index)
    width, height = frozen.size["width"], frozen.size["height"]
    ActionChains(browser).move_to_element_with_offset(
        frozen, int(x * width / 640 - width / 2), int(y * height / 480 - height / 2)).click().perform()
    assert wait_until(lambda: "Preview" in _text(browser, "message"), 30), _text(browser, "message")
    old_support = _text(browser, "support-id")
    assert wait_until(lambda: browser.execute_script(  # the preview (the pick's mask on the frame) is shown
        "return arguments[0].src.includes('/picks/') && arguments[0].complete && arguments[0].naturalWidth > 0",
        frozen), 20)
    if os.environ.get("PERSENSE_UPDATE_DOCS") == "1":
        browser.save_screenshot(str(ROOT / "docs" / "console-pick.png"))

    applied_at = time.time()  # unix seconds, as the results' publish_ts
    browser.find_element("id", "apply").click()
    assert wait_until(lambda: "Applied" in _text(browser, "message"), 30), _text(browser, "message")
    new_support = _text(browser, "message").split("support ")[1].split(" ")[0]
    assert new_support != old_support

    simulator = ConveyorSimulator(640, 480, OBJECTS, DISTRACTORS)
    counted_at, seen, after = None, [], []
    for doc in _results(bus, 30):
        if doc["support_id"] != new_support:
            continue
        truth = simulator.frame(doc["frame_index"]).distractor_count
        if counted_at is not None:
            after.append((doc["count"], truth))
            if len(after) == 5:
                break
            continue
        seen.append((doc["count"], truth))
        if abs(doc["count"] - truth) <= 1:
            counted_at = doc["publish_ts"]
    bus.close()
    assert counted_at is not None, f"results with the new support do not count the distractors: {seen[:10]}"
    # And it stays so: the targets (OBJECTS of them) are never what is counted any more. The embedded engines
    # miss the simulator's elongated distractors in a few frames in a hundred (count 0, README: what they do
    # badly), so one of the five may be off.
    assert len(after) == 5, after
    assert all(count <= truth + 3 for count, truth in after), after
    assert sum(abs(count - truth) <= 3 for count, truth in after) >= 4, after
    print(f"\nconsole timings: live segmentation {live_after_s:.2f} s after page load ({since_start_s:.2f} s after "
          f"'persense run' started); distractors counted on the bus {counted_at - applied_at:.2f} s after Apply")
    if os.environ.get("PERSENSE_UPDATE_DOCS") == "1":
        assert wait_until(lambda: _live_shown(browser), 20)
        assert wait_until(lambda: _text(browser, "support-id") == new_support, 20)
        time.sleep(1.0)  # let the figures settle for the picture (not for correctness)
        browser.save_screenshot(str(ROOT / "docs" / "console.png"))


def _png(path: Path, image: np.ndarray) -> str:
    cv2.imwrite(str(path), image)
    return str(path)


def test_upload_a_support_and_a_bad_upload_is_explained(run, browser, tmp_path):
    r = run()
    r.wait_http()
    browser.get(r.base + "/")
    assert wait_until(lambda: _live_shown(browser), 60, 0.05)
    image, mask = ConveyorSimulator(640, 480, OBJECTS, DISTRACTORS).support()
    before = _text(browser, "support-id")

    not_an_image = tmp_path / "notes.txt"
    not_an_image.write_text("not an image")
    browser.find_element("id", "upload-image").send_keys(str(not_an_image))
    browser.find_element("id", "upload-mask").send_keys(_png(tmp_path / "mask.png", mask.astype(np.uint8) * 255))
    browser.find_element("id", "upload-button").click()
    assert wait_until(lambda: "support image" in _text(browser, "message"), 30), _text(browser, "message")
    assert "error" in browser.find_element("id", "message").get_attribute("class")
    assert _text(browser, "support-id") == before

    # A different support than the one in force: the simulator's own, with the mask shrunk a little.
    smaller = cv2.erode(mask.astype(np.uint8) * 255, np.ones((5, 5), np.uint8))
    browser.find_element("id", "upload-image").clear()
    browser.find_element("id", "upload-image").send_keys(
        _png(tmp_path / "image.png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR)))
    browser.find_element("id", "upload-mask").clear()
    browser.find_element("id", "upload-mask").send_keys(_png(tmp_path / "smaller.png", smaller))
    browser.find_element("id", "upload-button").click()
    assert wait_until(lambda: "Uploaded" in _text(browser, "message"), 30), _text(browser, "message")
    assert wait_until(lambda: _text(browser, "support-id") not in (before, "–"), 10)

    # Undo by keyboard: focus the button and press Enter.
    from selenium.webdriver.common.keys import Keys

    assert wait_until(lambda: browser.find_element("id", "undo").is_enabled(), 10)
    browser.find_element("id", "undo").send_keys(Keys.ENTER)
    assert wait_until(lambda: _text(browser, "support-id") == before, 30), _text(browser, "message")


def test_a_token_protected_console_refuses_without_the_token(run, browser, tmp_path):
    config = tmp_path / "token.yaml"
    config.write_text(f"stream:\n  console:\n    token: {TOKEN}\n")
    r = run("--config", str(config))
    r.wait_http()
    browser.get(r.base + "/")
    assert "needs its token" in browser.find_element("tag name", "body").text
    assert browser.find_elements("id", "live") == []
    browser.get(r.base + f"/?token={TOKEN}")
    assert browser.current_url == r.base + "/"  # the token left the address bar
    assert wait_until(lambda: _live_shown(browser), 60, 0.05), "the console does not work with the token"
    assert TOKEN not in r.log.read_text()  # a credential never reaches the log


def test_pick_by_keyboard_alone(run, browser):
    """Freeze with Enter on the button, move the cross with the arrow keys, Enter picks: no mouse needed."""
    from selenium.webdriver.common.keys import Keys

    r = run()
    r.wait_http()
    browser.get(r.base + "/")
    assert wait_until(lambda: _live_shown(browser), 60, 0.05)
    browser.find_element("id", "freeze").send_keys(Keys.ENTER)
    frozen = browser.find_element("id", "frozen")
    assert wait_until(lambda: "frozen" in _text(browser, "message"), 20), _text(browser, "message")
    assert browser.switch_to.active_element == frozen  # focus moved to the frame
    index = int(frozen.get_attribute("data-frame-index"))
    x, y = distractor_point(ConveyorSimulator(640, 480, OBJECTS, DISTRACTORS), index)
    # The cross starts at the centre (320, 240) and moves 20 px per Shift+arrow, 4 px per arrow.
    keys = []
    for delta, plus, minus in ((x - 320, Keys.ARROW_RIGHT, Keys.ARROW_LEFT), (y - 240, Keys.ARROW_DOWN, Keys.ARROW_UP)):
        key = plus if delta > 0 else minus
        keys += [Keys.SHIFT + key + Keys.SHIFT] * (abs(delta) // 20) + [key] * ((abs(delta) % 20) // 4)
    frozen.send_keys(*keys, Keys.ENTER)
    assert wait_until(lambda: "Preview" in _text(browser, "message"), 30), _text(browser, "message")
    assert browser.find_element("id", "apply").is_enabled()
    x0, y0, x1, y1 = browser.execute_script("return state.pick.bbox")  # the page's own record of the pick
    assert x0 <= x + 4 and x - 4 < x1 and y0 <= y + 4 and y - 4 < y1, "the keyboard pick is not at the distractor"


def _click_image_at(browser, image, x: float, y: float) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    width, height = image.size["width"], image.size["height"]
    ActionChains(browser).move_to_element_with_offset(
        image, int(x * width / 640 - width / 2), int(y * height / 480 - height / 2)).click().perform()


def test_with_two_cameras_a_pick_applies_to_the_shown_camera_only_when_asked(run, browser, tmp_path):
    """Two cameras on one product: with "this camera only" ticked, Apply and Undo change the shown camera's
    support and leave the other's alone."""
    from selenium.webdriver.support.ui import Select

    config = tmp_path / "two.yaml"
    config.write_text("stream:\n  sources:\n"
                      f"    - {{uri: '{SIM}', camera_id: left}}\n"
                      f"    - {{uri: '{SIM}', camera_id: right}}\n")
    r = run("--config", str(config), source=None)
    r.wait_http()
    browser.get(r.base + "/")
    assert wait_until(lambda: _live_shown(browser), 60, 0.05), "no live segmentation in the page"
    before = {camera: row["support_id"] for camera, row in get_json(r.base + "/api/status")[1]["cameras"].items()}
    assert before["left"] == before["right"]

    Select(browser.find_element("id", "camera")).select_by_value("right")
    only = browser.find_element("id", "camera-only")
    assert only.is_displayed() and not only.is_selected()  # one product for both: every camera by default
    only.click()
    browser.find_element("id", "freeze").click()
    frozen = browser.find_element("id", "frozen")
    assert wait_until(lambda: frozen.is_displayed() and browser.execute_script(
        "return arguments[0].complete && arguments[0].naturalWidth > 0", frozen), 20)
    index = int(frozen.get_attribute("data-frame-index"))
    _click_image_at(browser, frozen, *distractor_point(ConveyorSimulator(640, 480, OBJECTS, DISTRACTORS), index))
    assert wait_until(lambda: "Preview" in _text(browser, "message"), 30), _text(browser, "message")
    browser.find_element("id", "apply").click()
    assert wait_until(lambda: "Applied" in _text(browser, "message"), 30), _text(browser, "message")

    def supports() -> dict:
        return {camera: row["support_id"] for camera, row in get_json(r.base + "/api/status")[1]["cameras"].items()}

    # A camera's status shows the support of its latest result: the next frame's.
    assert wait_until(lambda: supports()["right"] != before["right"], 20), supports()
    time.sleep(0.5)  # frames of the left camera after the change, too
    after = supports()
    assert after["left"] == before["left"], (before, after)
    # The page shows the shown camera's support, and its own undo.
    assert wait_until(lambda: _text(browser, "support-id") == after["right"], 10)
    undo = browser.find_element("id", "undo")
    assert wait_until(lambda: undo.is_enabled(), 10)
    undo.click()
    assert wait_until(lambda: "Undone" in _text(browser, "message"), 30), _text(browser, "message")
    assert wait_until(lambda: supports() == before, 20), (before, supports())
