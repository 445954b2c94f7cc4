"""From frame pixels to the belt's plane: millimetres where the camera is calibrated, pixels where it is not.

Three calibrations (streamer.stream.tally_config.CalibrationConfig):
- none: the plane is the frame itself, in pixels;
- a scale (px_per_mm, or a reference object): the plane is the frame divided by the scale, a camera looking
  straight down at the belt;
- a homography (`persense calibrate`, streamer.calibration): undistorted pixels -> millimetres on the belt, so a
  camera looking at the belt at an angle measures right, with OpenCV's lens model (camera matrix and distortion
  coefficients) where the board showed distortion.

An item's figures go to the plane through the map's Jacobian at its centroid (`plane_figures`): its area by the
Jacobian's determinant and its second moments by J S J^T. That is exact for an affine map and, under perspective,
off by the change of scale across the item (a fraction of a percent for an item a tenth of the frame wide).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from streamer.tracking.measure import COLUMN, to_mm

_STEP_PX = 1.0  # finite-difference step of the Jacobian, pixels


class BeltPlane:
    """One camera's map from frame pixels to the belt plane.

    Args:
        px_per_mm: a uniform scale (pixels per millimetre); None with no homography: the plane is in pixels.
        homography: float[3, 3] undistorted pixels -> plane millimetres.
        camera_matrix, distortion: OpenCV's lens model of the frame (None: no distortion).
    """

    def __init__(self, px_per_mm: float | None = None, homography: np.ndarray | None = None,
                 camera_matrix: np.ndarray | None = None, distortion: np.ndarray | None = None):
        self.px_per_mm = px_per_mm
        self.homography = None if homography is None else np.asarray(homography, np.float64).reshape(3, 3)
        self.camera_matrix = None if camera_matrix is None else np.asarray(camera_matrix, np.float64).reshape(3, 3)
        self.distortion = None if distortion is None else np.asarray(distortion, np.float64).reshape(-1)

    @classmethod
    def from_config(cls, calibration) -> "BeltPlane":
        """A CalibrationConfig -> its plane."""
        if calibration.homography is None:
            return cls(calibration.scale)
        lens = calibration.camera_matrix is not None
        return cls(None, np.array(calibration.homography), np.array(calibration.camera_matrix) if lens else None,
                   np.array(calibration.distortion) if lens else None)

    @property
    def units(self) -> str:
        return "mm" if self.calibrated else "px"

    @property
    def calibrated(self) -> bool:
        return self.homography is not None or self.px_per_mm is not None

    def undistort(self, points: np.ndarray) -> np.ndarray:
        """float[N, 2] frame pixels -> float[N, 2] pixels of the lens without distortion."""
        p = np.asarray(points, np.float64).reshape(-1, 2)
        if self.camera_matrix is None or self.distortion is None or not np.any(self.distortion) or len(p) == 0:
            return p
        out = cv2.undistortPoints(p.reshape(-1, 1, 2), self.camera_matrix, self.distortion, P=self.camera_matrix)
        return out.reshape(-1, 2)

    def to_plane(self, points: np.ndarray) -> np.ndarray:
        """float[N, 2] frame pixels -> float[N, 2] plane coordinates (mm, or pixels uncalibrated)."""
        p = np.asarray(points, np.float64).reshape(-1, 2)
        if self.homography is not None:
            if len(p) == 0:
                return p
            return cv2.perspectiveTransform(self.undistort(p).reshape(-1, 1, 2), self.homography).reshape(-1, 2)
        return p / self.px_per_mm if self.px_per_mm is not None else p.copy()

    def to_pixels(self, points: np.ndarray) -> np.ndarray:
        """float[N, 2] plane coordinates -> frame pixels (the inverse of to_plane; lens distortion included)."""
        q = np.asarray(points, np.float64).reshape(-1, 2)
        if self.homography is None:
            return q * self.px_per_mm if self.px_per_mm is not None else q.copy()
        p = cv2.perspectiveTransform(q.reshape(-1, 1, 2), np.linalg.inv(self.homography)).reshape(-1, 2)
        if self.camera_matrix is None or self.distortion is None or not np.any(self.distortion):
            return p
        k = self.camera_matrix
        normal = np.column_stack([(p[:, 0] - k[0, 2]) / k[0, 0], (p[:, 1] - k[1, 2]) / k[1, 1], np.ones(len(p))])
        out, _ = cv2.projectPoints(normal.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), k, self.distortion)
        return out.reshape(-1, 2)

    def jacobians(self, points: np.ndarray) -> np.ndarray:
        """float[N, 2] frame pixels -> float[N, 2, 2]: d(plane) / d(pixel) at each (mm per pixel)."""
        p = np.asarray(points, np.float64).reshape(-1, 2)
        if self.homography is None:
            scale = 1.0 / self.px_per_mm if self.px_per_mm is not None else 1.0
            return np.broadcast_to(np.eye(2) * scale, (len(p), 2, 2)).copy()
        h = _STEP_PX / 2
        probes = np.concatenate([p - [h, 0], p + [h, 0], p - [0, h], p + [0, h]])
        q = self.to_plane(probes).reshape(4, len(p), 2)
        return np.stack([(q[1] - q[0]) / _STEP_PX, (q[3] - q[2]) / _STEP_PX], axis=2)

    def local_px_per_mm(self, points: np.ndarray) -> np.ndarray:
        """float[N, 2] frame pixels -> float[N]: pixels per millimetre there (the root of the area scale)."""
        return 1.0 / np.sqrt(np.abs(np.linalg.det(self.jacobians(points))))

    def figures(self, table: np.ndarray, centres: np.ndarray) -> np.ndarray:
        """A measure table in pixels (streamer.tracking.measure) and its centroids float[N, 2] -> the table in
        plane units (mm, mm²; orientation in the plane's axes; colours and solidity unchanged)."""
        if self.homography is None:
            return to_mm(table, self.px_per_mm)
        return plane_figures(table, self.jacobians(np.nan_to_num(centres)))


def plane_figures(table: np.ndarray, jacobians: np.ndarray) -> np.ndarray:
    """float[N, len(FIELDS)] figures in pixels, float[N, 2, 2] the map's Jacobian at each item -> the figures on
    the plane: area times |det J|, the ellipse's second moments S -> J S J^T (its axes and orientation), the
    equivalent diameter from the area."""
    out = np.array(table, np.float64, copy=True)
    if len(out) == 0:
        return out
    area = out[:, COLUMN["area"]] * np.abs(np.linalg.det(jacobians))
    out[:, COLUMN["area"]] = area
    out[:, COLUMN["diameter"]] = 2.0 * np.sqrt(area / math.pi)
    # The ellipse's covariance from its axes (axis = 4 sqrt(eigenvalue)) and orientation.
    major, minor = out[:, COLUMN["major_axis"]] / 4.0, out[:, COLUMN["minor_axis"]] / 4.0
    theta = np.radians(out[:, COLUMN["orientation"]])
    rotation = np.stack([np.stack([np.cos(theta), -np.sin(theta)], -1), np.stack([np.sin(theta), np.cos(theta)], -1)],
                        -2)
    eigen = np.zeros((len(out), 2, 2))
    eigen[:, 0, 0], eigen[:, 1, 1] = major ** 2, minor ** 2
    covariance = rotation @ eigen @ rotation.transpose(0, 2, 1)
    plane = jacobians @ covariance @ jacobians.transpose(0, 2, 1)
    a, b, c = plane[:, 0, 0], plane[:, 0, 1], plane[:, 1, 1]
    half_trace, root = (a + c) / 2.0, np.sqrt(np.maximum(((a - c) / 2.0) ** 2 + b * b, 0.0))
    out[:, COLUMN["major_axis"]] = 4.0 * np.sqrt(np.maximum(half_trace + root, 0.0))
    out[:, COLUMN["minor_axis"]] = 4.0 * np.sqrt(np.maximum(half_trace - root, 0.0))
    angle = 0.5 * np.degrees(np.arctan2(2.0 * b, a - c))
    out[:, COLUMN["orientation"]] = np.where(angle >= 90.0, angle - 180.0, angle)
    return out
