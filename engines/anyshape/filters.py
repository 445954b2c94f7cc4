"""A per-pixel filter bank, the description of "what the material looks like" that the pixel classifier
learns from (the feature set of ilastik's pixel classification: smoothed colour, edges, blobs, ridges and
texture at scales tied to the product's size).

Every filter is separable Gaussian work in OpenCV on float32 planes, so the bank of a 320 x 240 grid costs a
few milliseconds.
"""

from __future__ import annotations

import cv2
import numpy as np

from engines.frame_cache import compute_once

# Names of the bank's planes, in order, for one scale triple (see `filter_bank`).
PLANE_NAMES = (
    "lightness s0", "red-green s0", "yellow-blue s0",
    "lightness s1", "red-green s1", "yellow-blue s1",
    "lightness s2",
    "gradient s0", "gradient s1", "gradient s2",
    "laplacian s1", "laplacian s2",
    "hessian max s1", "hessian min s1",
    "local contrast s1", "local contrast s2",
    "lightness relative s2",
)
N_PLANES = len(PLANE_NAMES)
# The plane where one item ends and the next begins: the lightness gradient at the finest scale (the edge cues of
# engines.anyshape.instances read it from the frame's bank, computed once for the classifier and them).
FINE_GRADIENT = PLANE_NAMES.index("gradient s0")


def opponent_planes(image_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """uint8[H, W, 3] RGB -> (lightness, red-green, yellow-blue) float32[H, W] planes.

    Lightness is a cube root of luminance (about CIE L*, 0-100): a brightness change of x0.5-1.5 then moves it
    by a similar amount everywhere rather than in proportion to it, which the classifier's brightness
    augmentation covers. The colour planes are chromaticity differences (luminance removed) scaled to L's range.
    """
    rgb = image_rgb.astype(np.float32) * (1.0 / 255.0)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    luminance = 0.299 * r + 0.587 * g + 0.114 * b
    lightness = 100.0 * np.cbrt(luminance)
    total = r + g + b + 0.03
    red_green = 100.0 * (r - g) / total
    yellow_blue = 100.0 * (r + g - 2.0 * b) / (2.0 * total)
    return lightness, red_green, yellow_blue


def _blur(plane: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(plane, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)


def filter_bank(image_rgb: np.ndarray, scales: tuple[float, float, float], memo: dict | None = None) -> np.ndarray:
    """uint8[H, W, 3] RGB -> float32[N_PLANES, H, W] (planes as PLANE_NAMES) at the three Gaussian scales
    (pixels of this image, small to large).

    Scale s0 sees the material (colour, fine edges), s1 the parts of an object, s2 the object as a whole and
    its surroundings: the classifier can tell a product's inside from its rim and from the belt between items.

    memo: planes of this same image already computed for another support's scales (a dict kept per frame and
    grid step, engines.anyshape.engines.FrameWork.grids): a plane of an equal scale is taken from it, and the
    planes computed here are added to it. The bank is the same, plane for plane, with or without it.
    """
    memo = {} if memo is None else memo

    def once(key: tuple, compute):
        return compute_once(memo, key, compute)  # a FrameCache: once among the frame's product threads

    s0, s1, s2 = scales
    lightness, red_green, yellow_blue = once(("opponent",), lambda: opponent_planes(image_rgb))
    opponent = {"lightness": lightness, "red-green": red_green, "yellow-blue": yellow_blue}

    def blurred(name: str, sigma: float) -> np.ndarray:
        return once(("blur", name, sigma), lambda: _blur(opponent[name], sigma))

    planes = []
    for sigma in (s0, s1):
        planes += [blurred("lightness", sigma), blurred("red-green", sigma), blurred("yellow-blue", sigma)]
    light_s2 = blurred("lightness", s2)
    planes.append(light_s2)
    for sigma, smooth in ((s0, planes[0]), (s1, planes[3]), (s2, light_s2)):
        planes.append(once(("gradient", sigma), lambda: _gradient(smooth, sigma)))
    hessian = None
    for sigma, smooth in ((s1, planes[3]), (s2, light_s2)):
        dxx = cv2.Sobel(smooth, cv2.CV_32F, 2, 0, ksize=3)
        dyy = cv2.Sobel(smooth, cv2.CV_32F, 0, 2, ksize=3)
        planes.append((dxx + dyy) * sigma * sigma)
        if hessian is None:
            dxy = cv2.Sobel(smooth, cv2.CV_32F, 1, 1, ksize=3)
            hessian = (dxx, dyy, dxy, sigma)
    dxx, dyy, dxy, sigma = hessian
    half_trace = (dxx + dyy) * 0.5
    root = np.sqrt(((dxx - dyy) * 0.5) ** 2 + dxy * dxy)
    planes += [(half_trace + root) * sigma * sigma, (half_trace - root) * sigma * sigma]
    square = once(("square",), lambda: lightness * lightness)
    for sigma, mean in ((s1, planes[3]), (s2, light_s2)):
        variance = _blur(square, sigma) - mean * mean
        planes.append(np.sqrt(np.maximum(variance, 0.0)))
    # Lightness against the wider surroundings: a gradient of light across the belt moves both terms together.
    planes.append(planes[3] - blurred("lightness", 4.0 * s2))
    return np.stack(planes).astype(np.float32, copy=False)


def _gradient(smooth: np.ndarray, sigma: float) -> np.ndarray:
    gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3)
    return cv2.magnitude(gx, gy) * sigma  # scale-normalised, so scales compare
