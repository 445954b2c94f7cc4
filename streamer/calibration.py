"""Calibration from one image of a printed board lying on the belt: a checkerboard or a ChArUco board (OpenCV).

The board's corners are found (cv2.findChessboardCornersSB; cv2.aruco.CharucoDetector), then two things are
fitted together: the lens's radial distortion (OpenCV's model, k1 and k2, about the frame's centre) and a
homography from the undistorted pixels to the board's plane in millimetres. A homography maps straight lines to
straight lines; a lens bends them, so the distortion is the one that lets the corners fit a homography best
(scipy's least squares over k1, k2, each step a homography fit by cv2.findHomography). The board's plane is the
belt's: millimetres per pixel anywhere in the frame follow from the homography, whatever the camera's tilt.

The camera matrix written beside the distortion has the focal length max(width, height) and the centre of the
frame: one view of a plane does not tell the focal length, and the radial model needs only some scale to measure
radii in (another focal length gives other k1, k2 for the same distortion in pixels).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.optimize import least_squares

CHARUCO_DICTIONARIES = ("DICT_4X4_50", "DICT_4X4_100", "DICT_5X5_50", "DICT_5X5_100", "DICT_6X6_50",
                        "DICT_6X6_250", "DICT_ARUCO_ORIGINAL")
_MIN_CORNERS = 12  # fewer say too little about a homography and a distortion together
# Distortion is fitted only when the corners reach this far from the frame's centre (fraction of the half
# diagonal): nearer the centre a radial term is indistinguishable from perspective.
_MIN_REACH_FOR_DISTORTION = 0.35
_REACH_FOR_K2 = 0.85


class BoardNotFound(ValueError):
    """The image does not show the board as described."""


@dataclass(frozen=True)
class Board:
    """A printed board. kind: "checkerboard" (inner corners cols x rows) or "charuco" (squares cols x rows, with
    markers of marker_mm from `dictionary`); square_mm: a square's side."""

    kind: str
    cols: int
    rows: int
    square_mm: float
    marker_mm: float | None = None
    dictionary: str = "DICT_4X4_50"

    def charuco(self):
        dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, self.dictionary))
        return cv2.aruco.CharucoBoard((self.cols, self.rows), self.square_mm, self.marker_mm, dictionary)


@dataclass(frozen=True)
class Calibration:
    """What `calibrate` found. homography: float[3, 3] undistorted pixels -> plane mm; camera_matrix float[3, 3]
    and distortion float[5] (k1, k2, 0, 0, 0): OpenCV's lens model; rms_mm: the corners' residual on the plane;
    corners: how many were used; image_size: (width, height)."""

    homography: np.ndarray
    camera_matrix: np.ndarray
    distortion: np.ndarray
    rms_mm: float
    corners: int
    image_size: tuple[int, int]

    def to_config(self) -> dict:
        """The `stream.tally.camera_calibration.<camera>` entry (streamer.stream.tally_config.CalibrationConfig)."""
        doc = {"homography": [[float(v) for v in row] for row in self.homography], "image_size": list(self.image_size),
               "rms_mm": round(self.rms_mm, 4)}
        if np.any(self.distortion):
            doc["camera_matrix"] = [[float(v) for v in row] for row in self.camera_matrix]
            doc["distortion"] = [float(v) for v in self.distortion]
        return doc


def find_corners(gray: np.ndarray, board: Board) -> tuple[np.ndarray, np.ndarray]:
    """uint8[H, W] image -> (float64[N, 2] corner pixels, float64[N, 2] the same corners on the board in mm);
    BoardNotFound when the board is not in view."""
    if board.kind == "checkerboard":
        found, corners = cv2.findChessboardCornersSB(gray, (board.cols, board.rows),
                                                     cv2.CALIB_CB_EXHAUSTIVE | cv2.CALIB_CB_ACCURACY)
        if not found:
            raise BoardNotFound(f"no checkerboard with {board.cols}x{board.rows} inner corners found (count the "
                                f"corners where four squares meet; the whole board must be in view)")
        grid = np.stack(np.meshgrid(np.arange(board.cols), np.arange(board.rows)), -1).reshape(-1, 2)
        return corners.reshape(-1, 2).astype(np.float64), grid.astype(np.float64) * board.square_mm
    charuco = board.charuco()
    corners, ids, _, _ = cv2.aruco.CharucoDetector(charuco).detectBoard(gray)
    if ids is None or len(ids) < _MIN_CORNERS:
        found = 0 if ids is None else len(ids)
        raise BoardNotFound(f"no ChArUco board of {board.cols}x{board.rows} squares ({board.dictionary}) found: "
                            f"{found} corners seen, {_MIN_CORNERS} needed")
    plane = charuco.getChessboardCorners()[ids.reshape(-1)][:, :2]
    return corners.reshape(-1, 2).astype(np.float64), plane.astype(np.float64)


def _undistort(pixels: np.ndarray, camera: np.ndarray, k: np.ndarray) -> np.ndarray:
    distortion = np.array([k[0], k[1], 0.0, 0.0, 0.0])
    return cv2.undistortPoints(pixels.reshape(-1, 1, 2), camera, distortion, P=camera).reshape(-1, 2)


def _homography(plane_mm: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Least-squares homography (all points) plane mm -> pixels."""
    matrix, _ = cv2.findHomography(plane_mm, pixels, 0)
    if matrix is None:
        raise BoardNotFound("the board's corners do not make a plane (all on one line?)")
    return matrix


def _residual(k: np.ndarray, pixels: np.ndarray, plane_mm: np.ndarray, camera: np.ndarray) -> np.ndarray:
    undistorted = _undistort(pixels, camera, k)
    projected = cv2.perspectiveTransform(plane_mm.reshape(-1, 1, 2), _homography(plane_mm, undistorted))
    return (projected.reshape(-1, 2) - undistorted).ravel()


def fit(pixels: np.ndarray, plane_mm: np.ndarray, image_size: tuple[int, int], distortion: bool = True) -> Calibration:
    """Corners float[N, 2] pixels and their plane positions float[N, 2] mm -> the calibration (module docstring)."""
    if len(pixels) < _MIN_CORNERS:
        raise BoardNotFound(f"{len(pixels)} corners found, {_MIN_CORNERS} needed")
    width, height = image_size
    camera = np.array([[max(width, height), 0.0, (width - 1) / 2], [0.0, max(width, height), (height - 1) / 2],
                       [0.0, 0.0, 1.0]])
    reach = np.max(np.hypot(pixels[:, 0] - camera[0, 2], pixels[:, 1] - camera[1, 2])) / np.hypot(width, height) * 2
    k = np.zeros(2)
    if distortion and reach >= _MIN_REACH_FOR_DISTORTION:
        # k1 first, within what lenses have (bounded: far from the truth the iterative undistortion misleads
        # the fit); k2 beside it only where the corners reach the frame's corners, which it mostly bends.
        k1 = least_squares(lambda v: _residual(np.array([v[0], 0.0]), pixels, plane_mm, camera), [0.0],
                           bounds=([-1.0], [1.0]), x_scale=[0.05]).x[0]
        k = np.array([k1, 0.0])
        if reach >= _REACH_FOR_K2:
            k = least_squares(_residual, k, args=(pixels, plane_mm, camera), bounds=([-1.0, -1.0], [1.0, 1.0]),
                              x_scale=[0.05, 0.05]).x
    undistorted = _undistort(pixels, camera, k)
    to_plane = np.linalg.inv(_homography(plane_mm, undistorted))
    to_plane /= to_plane[2, 2]
    on_plane = cv2.perspectiveTransform(undistorted.reshape(-1, 1, 2), to_plane).reshape(-1, 2)
    rms = float(np.sqrt(np.mean(np.sum((on_plane - plane_mm) ** 2, axis=1))))
    return Calibration(to_plane, camera, np.array([k[0], k[1], 0.0, 0.0, 0.0]), rms, len(pixels), (width, height))


def calibrate(image_rgb: np.ndarray, board: Board, distortion: bool = True) -> Calibration:
    """uint8[H, W, 3] RGB image of the board on the belt -> the calibration; BoardNotFound when it is not seen."""
    gray = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2GRAY)
    pixels, plane_mm = find_corners(gray, board)
    return fit(pixels, plane_mm, (gray.shape[1], gray.shape[0]), distortion)
