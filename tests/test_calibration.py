"""`persense calibrate` (streamer.calibration) on boards a tilted, distorting camera sees, and millimetres measured
on a tilted simulated belt with what it wrote."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest

from streamer.calibration import Board, calibrate
from streamer.config import load_config
from streamer.simulator.boards import Texture, TiltedCamera, charuco, checkerboard
from streamer.simulator.flow import FlowSimulator
from streamer.stream.tally import CameraTally
from streamer.tracking.belt_plane import BeltPlane
from streamer.tracking.measure import COLUMN, measure_shapes, touches_border

CHECKERBOARD = Board("checkerboard", 11, 8, 50.0)
CHARUCO = Board("charuco", 12, 9, 50.0, 37.0, "DICT_4X4_100")


def _true_jacobians(camera: TiltedCamera, points: np.ndarray) -> np.ndarray:
    h = 0.5
    columns = [(camera.to_plane(points + step) - camera.to_plane(points - step)) / (2 * h)
               for step in (np.array([h, 0.0]), np.array([0.0, h]))]
    return np.stack(columns, 2)


def _grid(width: int, height: int, step: int = 40) -> np.ndarray:
    ys, xs = np.mgrid[step // 2:height:step, step // 2:width:step]
    return np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float64)


@pytest.mark.parametrize("board, tilt, k1", [
    (CHECKERBOARD, 0.0, 0.0), (CHECKERBOARD, 30.0, -0.25), (CHECKERBOARD, 15.0, -0.15), (CHARUCO, 30.0, -0.25),
])
def test_calibrate_recovers_the_scale_across_the_frame(board, tilt, k1):
    texture = checkerboard(board, 4.0) if board.kind == "checkerboard" else charuco(board, 4.0)
    centre = ((board.cols - 1) / 2 * board.square_mm, (board.rows - 1) / 2 * board.square_mm)
    if board.kind == "charuco":
        centre = (board.cols / 2 * board.square_mm, board.rows / 2 * board.square_mm)
    camera = TiltedCamera((1280, 960), 1.6, tilt, k1, centre)
    found = calibrate(cv2.cvtColor(camera.render(texture), cv2.COLOR_GRAY2RGB), board)
    plane = BeltPlane(None, found.homography, found.camera_matrix, found.distortion)
    points = _grid(1280, 960)
    truth, measured = _true_jacobians(camera, points), plane.jacobians(points)
    # Millimetres per pixel along the frame's x and y, everywhere in the frame.
    error = np.abs(np.linalg.norm(measured, axis=1) / np.linalg.norm(truth, axis=1) - 1)
    print(f"{board.kind} tilt {tilt} k1 {k1}: scale error max {100 * error.max():.2f}%, median "
          f"{100 * np.median(error):.2f}% over {len(points)} points")
    assert error.max() < 0.01, error.max()
    assert (found.distortion[0] < -0.05) == (k1 < 0)  # the barrel is seen where there is one
    # The scale varies across a tilted frame: a single px_per_mm would be off by far more than 1%.
    spread = np.linalg.norm(truth, axis=1)
    assert (tilt == 0) or spread.max() / spread.min() > 1.2


def test_item_diameters_in_mm_on_a_tilted_belt():
    """A flow simulator's belt (3 px/mm) seen by a camera tilted 30 degrees with a barrel lens, calibrated from a
    board it sees: each whole item's diameter in mm against the simulator's."""
    board = Board("checkerboard", 11, 8, 20.0)
    centre = (5 * 20.0, 3.5 * 20.0)
    camera = TiltedCamera((1280, 960), 4.2, 30.0, -0.2, centre)
    found = calibrate(cv2.cvtColor(camera.render(checkerboard(board, 12.0)), cv2.COLOR_GRAY2RGB), board)
    sim_px_per_mm = 3.0
    sim = FlowSimulator(960, 720, 30, 0, 6.0, 7, sim_px_per_mm)
    # The simulator's frame centre (160, 120 mm) lies under the board's centre.
    origin = ((160 - centre[0]) * sim_px_per_mm, (120 - centre[1]) * sim_px_per_mm)
    plane = BeltPlane(None, found.homography, found.camera_matrix, found.distortion)
    errors, naive = [], []
    centre_scale = float(plane.local_px_per_mm(np.array([[640.0, 480.0]]))[0])
    for index in (300, 340, 380):
        scene, truth = sim.frame(index)
        labels = camera.render(Texture(scene.labels.astype(np.uint16), sim_px_per_mm, origin), nearest=True)
        assert labels.min() > 0 or np.count_nonzero(labels) > 0.3 * labels.size  # the belt fills the view
        boxes, masks, labels_seen = [], [], []
        for label in np.unique(labels[labels > 0]).tolist():
            ys, xs = np.nonzero(labels == label)
            box = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
            boxes.append(box)
            masks.append(labels[box[1]:box[3], box[0]:box[2]] == label)
            labels_seen.append(label)
        measured = measure_shapes(np.array(boxes), masks)
        whole = ~touches_border(np.array(boxes), 1280, 960)
        in_mm = plane.figures(measured.table, measured.centres)[:, COLUMN["diameter"]]
        for k, label in enumerate(labels_seen):
            ys, xs = np.nonzero(scene.labels == label)
            cut = xs.min() == 0 or ys.min() == 0 or xs.max() == 959 or ys.max() == 719
            if not whole[k] or cut:
                continue
            # The simulator's item is the one whose centre is that of the label's pixels (no occlusion here).
            nearest = np.argmin(np.hypot(truth.centres[:, 0] - xs.mean(), truth.centres[:, 1] - ys.mean()))
            true_mm = truth.diameters_mm[nearest]
            errors.append(in_mm[k] / true_mm - 1)
            naive.append(measured.table[k, COLUMN["diameter"]] / centre_scale / true_mm - 1)
    print(f"tilted belt: {len(errors)} items, median |error| {100 * np.median(np.abs(errors)):.2f}% calibrated, "
          f"{100 * np.median(np.abs(naive)):.2f}% with one px_per_mm")
    assert len(errors) >= 30
    assert np.median(np.abs(errors)) <= 0.03, np.median(np.abs(errors))
    assert np.median(np.abs(naive)) > 10 * np.median(np.abs(errors))  # one scale for a tilted frame measures worse


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streamer", "calibrate", *args], capture_output=True, text=True,
                          timeout=120)


def test_cli_writes_the_cameras_calibration_into_the_config(tmp_path):
    camera = TiltedCamera((1280, 960), 1.6, 20.0, -0.15, (250.0, 175.0))
    image = tmp_path / "board.png"
    cv2.imwrite(str(image), camera.render(checkerboard(CHECKERBOARD, 4.0)))
    config = tmp_path / "line.yaml"
    config.write_text("stream:\n  tally:\n    interval_s: 2\n")
    proc = _run(str(image), "--size", "11x8", "--square-mm", "50", "--camera", "belt1", "--config", str(config))
    assert proc.returncode == 0, proc.stderr
    assert "88 corners" in proc.stdout and "wrote stream.tally.camera_calibration.belt1" in proc.stdout
    loaded = load_config(config)
    assert loaded.stream.tally.interval_s == 2  # the other settings stay
    calibration = loaded.stream.tally.calibration_of("belt1")
    assert calibration.in_mm and calibration.image_size == (1280, 960) and calibration.distortion[0] < 0
    tally = CameraTally(loaded.stream.tally, "belt1")
    assert tally.units == "mm" and CameraTally(loaded.stream.tally, "other").units == "px"
    # The board's axes are the plane's: distances, not coordinates, are the camera's.
    points = np.array([[300.0, 700.0], [1100.0, 150.0]])
    measured, truth = (np.hypot(*np.diff(plane_points, axis=0)[0]) for plane_points in
                       (tally.plane.to_plane(points), camera.to_plane(points)))
    assert measured == pytest.approx(truth, rel=0.005)


@pytest.mark.parametrize("args, message", [
    (["--size", "9x5", "--square-mm", "50"], "no checkerboard with 9x5 inner corners found"),
    (["--size", "11by8", "--square-mm", "50"], "--size must be COLSxROWS"),
    (["--size", "11x8", "--square-mm", "-3"], "--square-mm must be a length above 0"),
    (["--size", "12x9", "--square-mm", "50", "--board", "charuco"], "a charuco board needs --marker-mm"),
    (["--size", "12x9", "--square-mm", "50", "--board", "charuco", "--marker-mm", "37"], "no ChArUco board"),
])
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    image = tmp_path / "board.png"
    cv2.imwrite(str(image), TiltedCamera((640, 480), 0.8, 10.0, 0.0, (250.0, 175.0)).render(
        checkerboard(CHECKERBOARD, 2.0)))
    config = tmp_path / "c.yaml"
    proc = _run(str(image), *args, "--config", str(config))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and message in lines[0], proc.stderr
    assert not config.exists()


def test_cli_refuses_a_missing_image_and_a_config_that_is_not_one(tmp_path):
    proc = _run(str(tmp_path / "none.png"), "--size", "9x6", "--square-mm", "20", "--config", str(tmp_path / "c.yaml"))
    assert proc.returncode == 2 and "image not found" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    image = tmp_path / "board.png"
    cv2.imwrite(str(image), TiltedCamera((640, 480), 0.8, 10.0, 0.0, (250.0, 175.0)).render(
        checkerboard(CHECKERBOARD, 2.0)))
    config = tmp_path / "list.yaml"
    config.write_text("- a list\n")
    proc = _run(str(image), "--size", "11x8", "--square-mm", "50", "--config", str(config))
    assert proc.returncode == 2 and "top level must be a mapping" in proc.stderr
    assert config.read_text() == "- a list\n"
