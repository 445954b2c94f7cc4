"""Frames whose exemplars together find nothing: each exemplar alone is tried, so a full belt does not count 0.

In these frames of the default simulator the most support-like place (P_max) lies where two products meet: its
mask is not of the support's scale, the guessed box there spoiled the exemplars' common look, and the frame
counted 0 of about 60 (3% of the simulator's frames did). Since priors within a quarter object of the frame's
edges are left out, 519 and 618 no longer need the retry (a prior there was an object cut by the edge); 108 still does.
"""

import logging

import pytest

from engines.embedded import build_embedded_engines
from streamer.persense import PerSense
from streamer.sources.uri import open_source


@pytest.fixture(scope="module")
def setup():
    source = open_source("sim:?objects=60&fps=0", camera_id="test")
    source.open()
    persense = PerSense(build_embedded_engines())
    persense.set_support(*source.support())
    return persense, source.simulator


@pytest.mark.parametrize("index", [108, 519, 618])
def test_a_frame_whose_exemplars_together_found_nothing_is_counted(setup, index, caplog):
    persense, simulator = setup
    scene = simulator.frame(index)
    with caplog.at_level(logging.DEBUG, logger="streamer.persense.pipeline"):
        result = persense.segment(scene.image)
    retried = any("exemplars together found nothing" in r.getMessage() for r in caplog.records)
    assert retried == (index == 108)
    assert result.count >= 0.8 * scene.count, (result.count, scene.count)


def test_frames_that_work_do_not_retry(setup, caplog):
    persense, simulator = setup
    with caplog.at_level(logging.DEBUG, logger="streamer.persense.pipeline"):
        for index in (0, 1, 2):
            assert persense.segment(simulator.frame(index).image).count > 40
    assert not any("exemplars together found nothing" in r.getMessage() for r in caplog.records)
