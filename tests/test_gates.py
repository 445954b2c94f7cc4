"""Gate boxes for PPSM: a fixed region of interest, a detector engine, and their configuration errors."""

import numpy as np
import pytest

from streamer.config import GateConfig
from streamer.errors import UserError
from streamer.gates import DetectorGate, NoGate, RoiGate, build_gate


def test_no_gate_means_no_gating():
    assert build_gate(GateConfig()).boxes(np.zeros((10, 10, 3), np.uint8)) is None
    assert isinstance(build_gate(GateConfig()), NoGate)


def test_roi_in_pixels_and_in_fractions_of_the_frame():
    frame = np.zeros((100, 200, 3), np.uint8)
    assert RoiGate((10, 20, 50, 60)).boxes(frame).tolist() == [[10, 20, 50, 60]]
    assert RoiGate((0.0, 0.1, 1.0, 0.9)).boxes(frame).tolist() == [[0, 10, 200, 90]]


class FakeDetector:
    def detect(self, image):
        return np.array([[0, 0, 5, 5], [1, 1, 9, 9], [2, 2, 4, 4]]), np.array([0.3, 0.9, 0.1])


def make_detector():
    return FakeDetector()


def test_detector_boxes_below_the_confidence_are_dropped_and_the_best_comes_first():
    boxes = DetectorGate(FakeDetector(), min_score=0.15).boxes(np.zeros((10, 10, 3), np.uint8))
    assert boxes.tolist() == [[1, 1, 9, 9], [0, 0, 5, 5]]


def test_detector_from_an_import_path():
    gate = build_gate(GateConfig(kind="detector", detector="test_gates:make_detector", min_score=0.5))
    assert gate.boxes(np.zeros((10, 10, 3), np.uint8)).tolist() == [[1, 1, 9, 9]]


@pytest.mark.parametrize(
    "config,needle",
    [
        (GateConfig(kind="roi"), "gate.roi"),
        (GateConfig(kind="detector"), "module:factory"),
        (GateConfig(kind="detector", detector="no_such_module:factory"), "cannot load"),
    ],
)
def test_gate_configuration_errors_are_one_line(config, needle):
    with pytest.raises(UserError, match=needle):
        build_gate(config)

