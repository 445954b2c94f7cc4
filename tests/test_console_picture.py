"""The console's picture in a real browser (issue 25): the video scales to the window, marks are toggleable,
the count on the picture is the panel's, and the chart of count over time draws exactly the results received
(checked against the same results read off the ZeroMQ bus)."""

from __future__ import annotations

import json
import threading

from test_console_browser import _live_shown, _subscriber, _text, browser, pytestmark, run  # noqa: F401
from waiting import wait_until

POINTS = 12  # chart points to wait for (the page adds one per status answer with a new result, every 0.5 s)


class Bus(threading.Thread):
    """frame index -> count of every result published, read off the bus until stopped."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.sock = _subscriber(port)
        self.counts: dict[int, int] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            if self.sock.poll(100):
                _, header, *_ = self.sock.recv_multipart()
                doc = json.loads(header)
                if doc["schema"] == "persense.result/1":
                    self.counts[doc["frame_index"]] = doc["count"]


def test_picture_marks_count_and_chart(run, browser):
    r = run()
    r.wait_http()
    bus = Bus(r.ports["pub"])
    bus.start()
    try:
        browser.get(r.base + "/")
        assert wait_until(lambda: _live_shown(browser), 90, 0.05), "no live view"
        # The 640 px frame fills the view's width in a 1280 px window.
        assert browser.execute_script("return document.getElementById('live').clientWidth") > 700

        # The count on the picture and the panel's: one result, read in one go.
        badge, panel = browser.execute_script(
            "return [document.getElementById('count-badge').textContent, document.getElementById('count').textContent]")
        assert badge == f"count {panel}"

        # Marks: none, then back to outlines; each is a live stream of its own style.
        from selenium.webdriver.support.ui import Select

        marks = Select(browser.find_element("id", "marks"))
        marks.select_by_value("none")
        assert wait_until(lambda: "style=none" in browser.find_element("id", "live").get_attribute("src"), 5)
        assert wait_until(lambda: _live_shown(browser), 30, 0.05)
        marks.select_by_value("outline")
        assert wait_until(lambda: "style=outline" in browser.find_element("id", "live").get_attribute("src"), 5)

        assert wait_until(lambda: browser.execute_script("return persenseChart.frames.length") >= POINTS, 90, 0.1)
        shown, drawn, colour = browser.execute_script(
            "const s = persenseChart.shown(); return [s, persenseChart.plot.data, persenseChart.colour];")
        bus.stop.set()
        bus.join(5)
    finally:
        bus.stop.set()
    # The chart draws the series it holds, and the series is the results as published.
    assert drawn[0] == shown["times"] and drawn[1] == shown["counts"] and len(shown["counts"]) >= POINTS
    on_bus = [(f, c) for f, c in zip(shown["frames"], shown["counts"]) if f in bus.counts]
    assert len(on_bus) >= len(shown["frames"]) - 2, (shown["frames"], sorted(bus.counts)[:5])
    assert all(bus.counts[f] == c for f, c in on_bus), [(f, c, bus.counts[f]) for f, c in on_bus]
    assert shown["frames"] == sorted(shown["frames"])
    # And the line is on the canvas, in the product's colour.
    rgb = [int(colour[i:i + 2], 16) for i in (1, 3, 5)]
    painted = browser.execute_script(
        "const c = document.querySelector('#chart canvas'); const d = c.getContext('2d')"
        ".getImageData(0, 0, c.width, c.height).data; let n = 0;"
        "for (let i = 0; i < d.length; i += 4) if (Math.abs(d[i] - arguments[0]) < 8 && Math.abs(d[i + 1] - arguments[1]) < 8"
        " && Math.abs(d[i + 2] - arguments[2]) < 8 && d[i + 3] > 200) n++; return n;", *rgb)
    assert painted > 50, f"{painted} pixels of the line's colour {colour} on the chart"
    assert _text(browser, "count") != "–"


def test_items_passed_per_minute_and_out_of_spec_items_on_the_page(run, browser, tmp_path):
    config = tmp_path / "tally.yaml"
    # Every item is out of spec (none is under a pixel across), so the list fills within seconds.
    config.write_text(json.dumps({"stream": {"tally": {"interval_s": 1, "specs": {"diameter": {"max": 1}}}}}))
    r = run("--config", str(config), "--count-line", "0.5,0,0.5,1",
            source="sim:?flow=1&objects=8&distractors=0&width=192&height=144&fps=8&speed=8")
    r.wait_http()
    browser.get(r.base + "/")
    assert wait_until(lambda: _live_shown(browser), 90, 0.05), "no live view"
    assert wait_until(lambda: browser.find_element("id", "out-of-spec-recent").is_displayed(), 90, 0.1)
    assert "diameter" in _text(browser, "out-of-spec-list") and int(_text(browser, "passed")) >= 1
    assert wait_until(lambda: browser.execute_script(
        "return persenseChart.plot.series.length === 3 && persenseChart.shown().perMinute.some((v) => v > 0)"), 60)
    shown, drawn = browser.execute_script("return [persenseChart.shown(), persenseChart.plot.data];")
    assert drawn[2] == shown["perMinute"]
