"""Picking with the SAM engines (`persense support --point --config` a SAM config): the mask is SAM's best mask
for that one point prompt, as segment-anything's own predictor makes it."""

from __future__ import annotations

import cv2
import numpy as np

from sam_testing import agreement, reference_predictor, textured_image, tiny_dir  # noqa: F401
from streamer.cli import main
from test_sam_pipeline import _config_for


def test_support_point_with_sam_is_segment_anythings_best_mask(tiny_dir, tmp_path, capsys, monkeypatch):
    image = textured_image(240, 320, seed=3)
    cv2.imwrite(str(tmp_path / "line.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    point = (150, 110)
    predictor = reference_predictor(tiny_dir, "tiny")
    predictor.set_image(image)
    logits, scores, _ = predictor.predict(np.array([point], np.float32), np.array([1]), multimask_output=True,
                                          return_logits=True)
    best = logits[int(np.argmax(scores))]
    args = ["-q", "support", "--config", str(_config_for(tiny_dir, tmp_path)), "--image", str(tmp_path / "line.png"),
            "--point", f"{point[0]},{point[1]}", "--out", str(tmp_path / "m.png")]

    # Random weights answer with about half the image: refused as the background, nothing written.
    assert (best > 0).mean() > 0.25
    assert main(args) == 2 and "that is the background" in capsys.readouterr().err
    assert not (tmp_path / "m.png").exists()

    # With the background check off, the mask written is exactly segment-anything's best mask at the point.
    monkeypatch.setattr("streamer.persense.pick.MAX_OBJECT_FRACTION", 1.0)
    assert main(args) == 0
    mask = cv2.imread(str(tmp_path / "m.png"), cv2.IMREAD_GRAYSCALE) > 0
    assert mask.shape == (240, 320) and agreement(best, mask) > 0.99
