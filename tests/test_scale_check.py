"""The scale check: a frame whose objects are much larger or smaller than the support object is warned of once
per support (every engine looks near the support's size, so its counts would be silently wrong)."""

import logging
import subprocess
import sys

import cv2
import numpy as np
import pytest

from engines.embedded import build_embedded_engines
from streamer.devset.cases import development_cases
from streamer.persense import PerSense
from streamer.persense.scale_check import frame_scale, scale_mismatch, support_profile
from streamer.simulator import render_scene, render_support


@pytest.fixture(scope="module")
def coins():
    return next(case for case in development_cases() if case.name == "coins photo")


def _resized(image, factor):
    return cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)


def test_the_support_own_scale_is_not_flagged(coins):
    estimate = frame_scale(coins.image, support_profile(coins.support_image, coins.support_mask))
    assert 0.6 < estimate.ratio < 1.6
    assert scale_mismatch(estimate) is None


@pytest.mark.parametrize("factor, word", [(0.4, "smaller"), (3.0, "larger"), (6.0, "larger")])
def test_rescaled_frames_are_flagged_with_about_their_scale(coins, factor, word):
    estimate = frame_scale(_resized(coins.image, factor), support_profile(coins.support_image, coins.support_mask))
    warning = scale_mismatch(estimate)
    assert warning is not None and word in warning
    assert factor / 1.6 < estimate.ratio < factor * 1.6


def test_simulator_frames_at_the_supports_scale_are_not_flagged():
    image, mask = render_support(seed=3, object_radius=24)
    profile = support_profile(image, mask)
    for seed in range(3):
        scene = render_scene(seed=seed, object_radius=24)
        assert scale_mismatch(frame_scale(scene.image, profile)) is None


def _scale_warnings(caplog):
    return [r for r in caplog.records if r.levelno == logging.WARNING and "the support object's size" in r.getMessage()]


def test_the_pipeline_checks_on_a_new_support_a_new_frame_size_and_then_every_interval(coins, caplog):
    persense = PerSense(build_embedded_engines())
    persense.set_support(coins.support_image, coins.support_mask)
    large = _resized(coins.image, 3.0)
    with caplog.at_level(logging.WARNING, logger="streamer.persense.pipeline"):
        persense.segment(coins.image)
        assert not _scale_warnings(caplog)  # the first frame with objects was at the support's scale: checked, fine
        persense.segment(large)  # a camera zoomed: the frame size changed, so it is checked again
        assert len(_scale_warnings(caplog)) == 1
        persense.segment(large)  # within the interval: not again
        assert len(_scale_warnings(caplog)) == 1
        persense.set_support(coins.support_image, coins.support_mask)  # a new support is checked again
        persense.segment(large)
        assert len(_scale_warnings(caplog)) == 2
        persense.config.scale_check_interval_s = 0.0  # every frame
        persense.segment(large)
    assert len(_scale_warnings(caplog)) == 3


def test_a_few_items_entering_an_empty_belt_are_not_judged(caplog):
    """The flow simulator starts empty and items enter cut by the frame's edge: no false warning."""
    from streamer.sources.uri import open_source

    source = open_source("sim:?flow=1&fps=0&frames=40", camera_id="flow")
    source.open()
    persense = PerSense(build_embedded_engines())
    persense.set_support(*source.support())
    persense.config.scale_check_interval_s = 0.0
    counts = []
    with caplog.at_level(logging.WARNING, logger="streamer.persense.pipeline"):
        for _ in range(40):
            counts.append(persense.segment(source.read(5.0).image).count)
    assert max(counts) >= 10 and 0 < min(c for c in counts if c) < 5  # from a few items to many: both were seen
    assert not _scale_warnings(caplog)


def test_persense_segment_prints_the_warning_for_a_zoomed_frame(coins, tmp_path):
    cv2.imwrite(str(tmp_path / "support.png"), cv2.cvtColor(coins.support_image, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(tmp_path / "mask.png"), coins.support_mask.astype(np.uint8) * 255)
    cv2.imwrite(str(tmp_path / "zoomed.png"), cv2.cvtColor(_resized(coins.image, 3.0), cv2.COLOR_RGB2BGR))
    proc = subprocess.run(
        [sys.executable, "-m", "streamer", "segment", str(tmp_path / "zoomed.png"), "--support",
         str(tmp_path / "support.png"), "--support-mask", str(tmp_path / "mask.png"), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    # Either the objects found look larger, or (where the round route's shape check refuses the frame's objects)
    # nothing of the support's kind is found and the most support-like things look larger: both name the zoom.
    assert "look about" in proc.stderr and "larger" in proc.stderr and "current view" in proc.stderr


def test_persense_segment_checks_every_query(coins, tmp_path):
    """Several queries: each photograph is checked, not only the first."""
    cv2.imwrite(str(tmp_path / "support.png"), cv2.cvtColor(coins.support_image, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(tmp_path / "mask.png"), coins.support_mask.astype(np.uint8) * 255)
    queries = []
    for name, factor in (("same.png", 1.0), ("zoomed.png", 3.0), ("small.png", 0.4)):
        cv2.imwrite(str(tmp_path / name), cv2.cvtColor(_resized(coins.image, factor), cv2.COLOR_RGB2BGR))
        queries.append(str(tmp_path / name))
    proc = subprocess.run(
        [sys.executable, "-m", "streamer", "segment", *queries, "--support", str(tmp_path / "support.png"),
         "--support-mask", str(tmp_path / "mask.png"), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "the support object's size" in line]
    assert len(warnings) == 2 and "larger" in warnings[0] and "smaller" in warnings[1], proc.stderr
