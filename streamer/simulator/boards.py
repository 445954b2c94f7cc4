"""A tilted camera with a distorting lens looking at the belt's plane, and the calibration boards it sees.

For checking `persense calibrate` (streamer.calibration) and measurements in millimetres against an exact truth:
the plane (millimetres) is drawn from a texture, through a pinhole camera tilted about the belt's x axis and
OpenCV's radial distortion, into the frame. The truth is the camera itself: `to_plane` maps frame pixels to the
plane exactly as this camera does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from streamer.calibration import Board


@dataclass(frozen=True)
class Texture:
    """A picture of part of the plane: uint8[h, w] or [h, w, 3]; plane (x, y) mm sits at texture pixel
    (x, y) * px_per_mm + origin_px."""

    image: np.ndarray
    px_per_mm: float
    origin_px: tuple[float, float] = (0.0, 0.0)


def checkerboard(board: Board, px_per_mm: float = 8.0) -> Texture:
    """A checkerboard of board.cols x board.rows inner corners (one more square each way) on a white margin of a
    square; plane (0, 0) is its first inner corner."""
    squares_x, squares_y = board.cols + 1, board.rows + 1
    side = board.square_mm * px_per_mm
    margin = side
    width, height = int(round(squares_x * side + 2 * margin)), int(round(squares_y * side + 2 * margin))
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64) + 0.5
    cell_x, cell_y = np.floor((xs - margin) / side), np.floor((ys - margin) / side)
    inside = (cell_x >= 0) & (cell_x < squares_x) & (cell_y >= 0) & (cell_y < squares_y)
    image = np.where(inside & ((cell_x + cell_y) % 2 == 0), 0, 255).astype(np.uint8)
    return Texture(image, px_per_mm, (margin + side, margin + side))


def charuco(board: Board, px_per_mm: float = 8.0) -> Texture:
    """A ChArUco board as OpenCV draws it, on a white margin of a square; plane (0, 0) is its outer corner."""
    margin = int(round(board.square_mm * px_per_mm))
    size = (int(round(board.cols * board.square_mm * px_per_mm)) + 2 * margin,
            int(round(board.rows * board.square_mm * px_per_mm)) + 2 * margin)
    return Texture(board.charuco().generateImage(size, marginSize=margin), px_per_mm, (margin, margin))


class TiltedCamera:
    """A pinhole camera `distance_mm` from the plane, tilted `tilt_deg` about the plane's x axis, seeing plane
    point `centre_mm` at the frame's centre at `px_per_mm` (untilted), with radial distortion k1 (negative:
    barrel) measured at the focal length."""

    def __init__(self, size: tuple[int, int] = (1280, 960), px_per_mm: float = 2.0, tilt_deg: float = 0.0,
                 k1: float = 0.0, centre_mm: tuple[float, float] = (0.0, 0.0), distance_mm: float = 1000.0):
        self.size = size
        width, height = size
        focal = px_per_mm * distance_mm
        self.camera_matrix = np.array([[focal, 0, (width - 1) / 2], [0, focal, (height - 1) / 2], [0, 0, 1]])
        self.distortion = np.array([k1, 0.0, 0.0, 0.0, 0.0])
        t = math.radians(tilt_deg)
        rotation = np.array([[1, 0, 0], [0, math.cos(t), -math.sin(t)], [0, math.sin(t), math.cos(t)]])
        shift = -rotation @ np.array([centre_mm[0], centre_mm[1], 0.0]) + np.array([0.0, 0.0, distance_mm])
        # Plane (x, y, 1) -> undistorted pixels: K [r1 r2 t].
        self.plane_to_pixels = self.camera_matrix @ np.column_stack([rotation[:, 0], rotation[:, 1], shift])

    def undistort(self, pixels: np.ndarray) -> np.ndarray:
        return cv2.undistortPoints(np.asarray(pixels, np.float64).reshape(-1, 1, 2), self.camera_matrix,
                                   self.distortion, P=self.camera_matrix).reshape(-1, 2)

    def to_plane(self, pixels: np.ndarray) -> np.ndarray:
        """float[N, 2] frame pixels -> float[N, 2] plane mm (the truth)."""
        inverse = np.linalg.inv(self.plane_to_pixels)
        return cv2.perspectiveTransform(self.undistort(pixels).reshape(-1, 1, 2), inverse).reshape(-1, 2)

    def render(self, texture: Texture, background: int = 96, nearest: bool = False) -> np.ndarray:
        """The frame this camera sees of the plane painted with `texture` (background elsewhere); nearest: no
        interpolation (label maps)."""
        width, height = self.size
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
        plane = self.to_plane(np.stack([xs.ravel(), ys.ravel()], 1))
        map_x = (plane[:, 0] * texture.px_per_mm + texture.origin_px[0] - 0.5).reshape(height, width)
        map_y = (plane[:, 1] * texture.px_per_mm + texture.origin_px[1] - 0.5).reshape(height, width)
        fill = (background,) * (3 if texture.image.ndim == 3 else 1)
        return cv2.remap(texture.image, map_x.astype(np.float32), map_y.astype(np.float32),
                         cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                         borderValue=fill if not nearest else 0)
