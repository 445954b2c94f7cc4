"""The console's review page in a real browser (headless Chromium driven by Selenium, as
tests/test_console_browser.py): filter the archive to rejects (frames with an out-of-spec item), open one, see its
masks and result, pick the product from it and apply it, against `persense run` on the flow simulator.

Skipped with a reason where Chromium, its driver or selenium is missing (.ci/run installs them), as there.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.soak import free_port
from console_helpers import get_json
from waiting import wait_until

# The headless browser (Debian's chromium and chromium-driver, selenium), and the skip where one is missing.
from test_console_browser import browser, pytestmark  # noqa: E402,F401

ROOT = Path(__file__).resolve().parents[1]
# A flowing belt whose items all fail their spec (no diameter reaches 1000 mm): each item that passes the line
# makes an out-of-spec frame, which the archive keeps and the review page lists under rejects.
SOURCE = "sim:?flow=1&objects=12&distractors=0&fps=8&speed=12&px_per_mm=2"


@pytest.fixture
def line(tmp_path):
    """`persense run` with the archive on (a frame every 2 s, and every out-of-spec frame), on free ports."""
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"stream": {
        "archive": {"enabled": True, "path": str(tmp_path / "archive"),
                    "policy": {"every_s": 2, "before_s": 0, "after_s": 0}},
        "tally": {"calibration": {"px_per_mm": 2}, "specs": {"diameter": {"min": 1000}}}}}))
    http = free_port()
    log = tmp_path / "run.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamer", "run", "--config", str(config), "--source", SOURCE, "--count-line",
             "0.5,0,0.5,1", "--publish", f"tcp://127.0.0.1:{free_port()}", "--control",
             f"tcp://127.0.0.1:{free_port()}", "--metrics-port", str(http), "--cache-dir", str(tmp_path / "cache")],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=out, stderr=subprocess.STDOUT)
    yield f"http://127.0.0.1:{http}", log
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def _rejects(base: str) -> list[dict]:
    try:
        status, body = get_json(f"{base}/api/archive/frames?kinds=rejects", timeout=5)
    except OSError:
        return []
    return body.get("frames", []) if status == 200 else []


def _text(driver, element_id: str) -> str:
    return driver.find_element("id", element_id).text


@pytest.mark.slow
def test_filter_to_rejects_open_one_and_pick_the_product_from_it(line, browser):
    from selenium.webdriver.common.action_chains import ActionChains

    base, log = line
    assert wait_until(lambda: len(_rejects(base)) >= 1, 120, 0.5), log.read_text()[-2000:]
    status, every = get_json(f"{base}/api/archive/frames")
    assert len(every["frames"]) > len(_rejects(base))  # samples too: the filter has something to leave out

    browser.get(base + "/review")
    assert wait_until(lambda: browser.find_elements("css selector", ".frame-row"), 20)
    browser.find_element("id", "f-rejects").click()
    browser.find_element("id", "show").click()
    rejects = {str(f["id"]) for f in _rejects(base)}

    def listed() -> list:
        return browser.find_elements("css selector", ".frame-row")

    assert wait_until(lambda: listed() and {r.get_attribute("data-id") for r in listed()} <= rejects, 20)
    assert all("out_of_spec" in row.text for row in listed())

    row = listed()[0]
    frame_id = row.get_attribute("data-id")
    row.click()
    image = browser.find_element("id", "frame-image")
    assert wait_until(lambda: '"count"' in _text(browser, "frame-result") and browser.execute_script(
        "return arguments[0].complete && arguments[0].naturalWidth > 0", image), 20), _text(browser, "message")
    assert _text(browser, "frame-id") == frame_id
    recorded = get_json(f"{base}/api/archive/frames/{frame_id}")[1]["result"]
    assert json.loads(_text(browser, "frame-result"))["count"] == recorded["count"] > 0

    browser.find_element("id", "pick-from-frame").click()
    assert wait_until(lambda: "Click the product" in _text(browser, "message"), 20), _text(browser, "message")
    assert wait_until(lambda: "/api/frozen/" in image.get_attribute("src") and browser.execute_script(
        "return arguments[0].complete && arguments[0].naturalWidth > 0", image), 20)
    # Click the middle of one of the frame's objects (its centroid in the recorded result).
    target = max(recorded["instances"], key=lambda inst: inst["area"])
    x, y = target["centroid"]
    width, height = image.size["width"], image.size["height"]
    ActionChains(browser).move_to_element_with_offset(
        image, int(x * width / recorded["width"] - width / 2), int(y * height / recorded["height"] - height / 2)
    ).click().perform()
    assert wait_until(lambda: "Picked" in _text(browser, "message"), 60), _text(browser, "message")
    assert wait_until(lambda: "/picks/" in image.get_attribute("src"), 20)
    before = get_json(f"{base}/api/status")[1]["support_id"]
    browser.find_element("id", "apply").click()
    assert wait_until(lambda: "Applied" in _text(browser, "message"), 60), _text(browser, "message")
    applied = _text(browser, "message").split("support ")[1].split(" ")[0]
    assert applied != before
    assert wait_until(lambda: get_json(f"{base}/api/status")[1]["support_id"] == applied, 20)
