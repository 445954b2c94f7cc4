"""Issue 25's smaller items: `--point -5,50`, a pick on the background, a misspelt config key, the README's
metrics example, the pick preview in words, and the download's truth."""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

from streamer.cli import main
from streamer.imageio import write_image
from streamer.simulator import ConveyorSimulator

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def belt_image(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("belt") / "belt.png"
    write_image(path, ConveyorSimulator(640, 480, 60, 8).frame(0).image)
    return path


@pytest.mark.parametrize("argv_point", [["--point", "-5,50"], ["--point=-5,50"]])
def test_a_negative_point_gets_the_range_message(capsys, tmp_path, belt_image, argv_point):
    assert main(["support", "--image", str(belt_image), *argv_point, "--out", str(tmp_path / "m.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the point (-5, 50) is outside the 640x480 image" in err[0], err


def test_a_negative_count_line_value_is_a_value_too(capsys):
    assert main(["run", "--count-line", "-0.1,0,0.5", "--max-frames", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--count-line needs four numbers" in err[0], err


def test_a_pick_on_the_background_is_warned(caplog, tmp_path, belt_image):
    scene = ConveyorSimulator(640, 480, 60, 8).frame(0)
    assert scene.labels[5, 5] == 0 and not scene.distractors[5, 5]  # (5, 5) is belt
    with caplog.at_level("WARNING"):
        assert main(["support", "--image", str(belt_image), "--point", "5,5", "--out", str(tmp_path / "m.png")]) == 0
    assert any("looks like the background" in r.getMessage() for r in caplog.records)


def test_objects_are_not_taken_for_the_background():
    from streamer.pick_checks import background_warning

    scene = ConveyorSimulator(640, 480, 60, 8).frame(0)
    for label in range(1, 11):
        assert background_warning(scene.image, scene.labels == label) is None, label
    for label in range(1, min(scene.distractor_count, 4) + 1):
        assert background_warning(scene.image, scene.distractor_labels == label) is None, label


@pytest.mark.parametrize("yaml_text, hint", [
    ("stream:\n  sourcse: []\n", "stream.sourcse: Extra inputs are not permitted (did you mean 'sources'?)"),
    ("pipeline:\n  presense_threshold: 0.3\n", "(did you mean 'presence_threshold'?)"),
    ("stream:\n  sources:\n    - uri: 'sim:'\n      camra_id: x\n", "camra_id: Extra inputs are not permitted "
     "(did you mean 'camera_id'?)"),
    ("zzzz: 1\n", "zzzz: Extra inputs are not permitted (1 problem(s))"),  # nothing close: no guess
])
def test_a_misspelt_config_key_gets_did_you_mean(capsys, tmp_path, yaml_text, hint):
    path = tmp_path / "config.yaml"
    path.write_text(yaml_text)
    assert main(["run", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and hint in err[0], err


def test_the_readme_metrics_example_shows_the_gauges():
    from streamer.stream.metrics import SourceSnapshot, StreamMetrics

    readme = (ROOT / "README.md").read_text()
    pattern = re.search(r"/metrics \| grep -E '([^']+)'", readme).group(1)
    metrics = StreamMetrics(["cam0"])
    metrics.watch_sources(lambda: [SourceSnapshot("cam0", True, 0, 0.1)])
    metrics.objects.labels("cam0").set(57)
    metrics.match_quality.labels("cam0").set(0.8)
    metrics.frame("cam0", "processed")
    shown = [line for line in metrics.exposition().decode().splitlines() if re.search(pattern, line)]
    names = {line.split("{")[0].split(" ")[0] for line in shown}
    assert {"persense_objects", "persense_match_quality", "persense_source_up", "persense_last_frame_age_seconds",
            "persense_frames_total"} <= names, shown
    assert not any("_bucket" in line for line in shown) and len(shown) < 40


def test_pick_preview_in_words_and_download_carries_the_truth(tmp_path):
    from console_helpers import distractor_point, get_json, http, post
    from test_console_http import _processor
    from waiting import wait_until

    proc = _processor(tmp_path)
    proc.start()
    try:
        base = proc.http.base_url
        assert wait_until(lambda: get_json(base + "/api/status")[1]["cameras"]["belt"]["frame_index"] is not None, 30)
        _, frozen = post(base + "/api/cameras/belt/freeze")
        x, y = distractor_point(ConveyorSimulator(640, 480, 20, 6), frozen["frame_index"])
        status, pick = post(base + "/api/pick", {"freeze_id": frozen["freeze_id"], "x": x, "y": y})
        assert status == 200, pick
        assert re.fullmatch(r"an object about \d+ x \d+ pixels; the outline finder is (sure|fairly sure|unsure) of "
                            r"its edge", pick["summary"]), pick["summary"]
        status, _, body = http(base + "/api/cameras/belt/live.mjpg?style=bogus")
        assert status == 400 and b"style must be one of outline, fill, none" in body
        status, _, data = http(base + "/api/cameras/belt/download")
        assert status == 200
        doc = json.loads(zipfile.ZipFile(io.BytesIO(data)).read("result.json"))
        assert isinstance(doc["truth_count"], int) and doc["truth_count"] > 0
    finally:
        proc.stop()
    js = (ROOT / "streamer" / "console" / "static" / "console.js").read_text()
    assert "pick.summary" in js and "score ${pick.score}" not in js
    assert np.isfinite(x)


def test_the_support_is_shown_as_a_crop_of_the_product_outlined_in_its_colour():
    import cv2

    from streamer.console.picking_routes import _thumbnail

    image = np.full((480, 640, 3), 90, np.uint8)
    mask = np.zeros((480, 640), bool)
    cv2.ellipse(mask.view(np.uint8), (500, 100), (60, 12), 0, 0, 360, 1, -1)
    image[mask] = (200, 120, 40)
    thumb = cv2.cvtColor(cv2.imdecode(np.frombuffer(_thumbnail(image, mask, (0, 230, 255)), np.uint8), 1),
                         cv2.COLOR_BGR2RGB)
    h, w = thumb.shape[:2]
    # The product's box (121 x 25) and a margin of a quarter of its size: about 2:1, not the frame's 4:3.
    assert w == 240 and 0.4 < h / w < 0.55, thumb.shape
    outline = np.all(np.abs(thumb.astype(int) - (0, 230, 255)) < 60, axis=2)
    assert outline.sum() > 200  # the outline in the product's colour
    assert np.abs(thumb[h // 2, w // 2].astype(int) - (200, 120, 40)).max() < 40  # the product fills the middle


def test_marks_outline_fill_or_none_in_the_products_colour():
    from streamer.console.picture import draw, product_colour
    from streamer.types import Instance, SegmentationResult

    image = np.full((60, 80, 3), 100, np.uint8)
    mask = np.zeros((20, 20), bool)
    mask[4:16, 4:16] = True
    result = SegmentationResult(80, 60, [Instance(0, 0.9, (10, 10, 30, 30), mask)])
    colour = product_colour("3f9a0c1e77d2b845")
    assert colour == product_colour("3f9a0c1e77d2b845")  # a product keeps its colour
    assert np.array_equal(draw(image, result, colour, "none"), image)
    outline = draw(image, result, colour, "outline")
    painted = np.all(outline == colour, axis=2)
    assert painted[14, 14] and not painted[20, 20]  # the edge is drawn, the inside left as it is
    assert (outline[20, 20] == 100).all()
    fill = draw(image, result, colour, "fill")
    inside = fill[20, 20].astype(int)
    assert (inside != 100).any() and np.abs(inside - 100).max() < 0.35 * 255  # a light tint, the item still seen


@pytest.mark.parametrize("uri", ["sim:?scene=shape", "sim:?shape=rods"])
def test_a_bad_simulator_option_on_the_command_line_is_one_line(capsys, uri):
    assert main(["run", "--source", uri, "--max-frames", "1"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1 and "--source: sim option" in err, err
