"""`persense support --point`: the mask the decoder makes at a point, and `persense segment` accepting it."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from console_helpers import inner_point
from streamer.cli import main
from streamer.simulator import render_scene


@pytest.fixture(scope="module")
def scene_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scene")
    scene = render_scene(480, 360, n_objects=25, n_distractors=4, seed=5, object_radius=24)
    cv2.imwrite(str(folder / "line.png"), cv2.cvtColor(scene.image, cv2.COLOR_RGB2BGR))
    return folder / "line.png", scene


def test_the_mask_at_a_point_is_that_object_and_segment_accepts_it(tmp_path, scene_file, capsys):
    path, scene = scene_file
    target = scene.labels == 7
    x, y = inner_point(target)
    out = tmp_path / "mask.png"
    assert main(["-q", "support", "--image", str(path), "--point", f"{x},{y}", "--out", str(out)]) == 0
    assert f"--support-mask {out}" in capsys.readouterr().out
    mask = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (360, 480) and set(np.unique(mask)) == {0, 255}
    picked = mask > 0
    assert (picked & target).sum() / (picked | target).sum() > 0.7  # the object at the point, not another

    assert main(["-q", "segment", "--support", str(path), "--support-mask", str(out), "--out", str(tmp_path / "seg"),
                 str(path)]) == 0
    doc = json.loads((tmp_path / "seg" / "line.json").read_text())
    assert abs(doc["count"] - scene.count) <= max(2, scene.count // 10)


@pytest.mark.parametrize("point, out, words", [
    ("999,10", "m.png", "outside the 480x360 image"),
    ("12", "m.png", "--point must be X,Y"),
    ("a,b", "m.png", "--point must be X,Y"),
    ("nan,3", "m.png", "finite"),
    ("10,10", "m.jpg", "must be a .png"),
])
def test_bad_points_and_outputs_get_one_line(tmp_path, scene_file, capsys, point, out, words):
    path, _ = scene_file
    assert main(["-q", "support", "--image", str(path), "--point", point, "--out", str(tmp_path / out)]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / out).exists()


def test_a_missing_image_is_one_line(tmp_path, capsys):
    assert main(["-q", "support", "--image", str(tmp_path / "no.png"), "--point", "1,1", "--out",
                 str(tmp_path / "m.png")]) == 2
    assert "no.png" in capsys.readouterr().err
