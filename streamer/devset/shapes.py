"""Product shapes drawn exactly, and their surfaces cut from scikit-image's bundled photographs.

A shape is a list of polygons in object coordinates (px, centred on 0): each is filled (+) or cut out (-) in
turn, so holes, notches and crescents are exact and the truth mask is the very pixel set that is painted.
Rotation turns the vertices, not the raster, so no interpolation blurs a mask's edge.

Surfaces are windows of the photographs (grey luminance) used as the modulation of a base colour, so each
category controls its colour exactly (low contrast, similar colour, one shape in several colours) while
the texture stays real. Only photographs that ship inside scikit-image are used: those fetched through pooch
on first use are not available offline.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

Polygon = tuple[int, np.ndarray]  # (+1 fill | -1 cut out, float64[N, 2] x, y vertices)


# --- shapes (sizes in px; `length` is the object's longest extent) ------------------------------------------------
def ellipse(rx: float, ry: float, cx: float = 0.0, cy: float = 0.0, n: int = 48) -> np.ndarray:
    """float64[n, 2]: an ellipse (a circle when rx == ry) as a polygon."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def box(w: float, h: float, cx: float = 0.0, cy: float = 0.0) -> np.ndarray:
    return np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]]) + (cx, cy)


def regular(n: int, r: float, phase: float = 0.0) -> np.ndarray:
    t = phase + np.arange(n) * 2 * np.pi / n
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)


def stadium(length: float, width: float) -> list[Polygon]:
    """A rod with rounded ends (dowel, pasta, pin), `length` x `width`."""
    r = width / 2
    t = np.linspace(-np.pi / 2, np.pi / 2, 16)
    right = np.stack([length / 2 - r + r * np.cos(t), r * np.sin(t)], axis=1)
    return [(1, np.concatenate([right, -right]))]


def bolt(length: float, width: float) -> list[Polygon]:
    """A shaft with a wider head at one end (bolt, screw)."""
    head = min(width * 1.1, length * 0.2)
    return [(1, box(length - head, width * 0.7, head / 2)), (1, box(head, width * 1.5, -length / 2 + head / 2))]


def l_shape(length: float, arm: float) -> list[Polygon]:
    """An L bracket: two arms of thickness `arm` at right angles."""
    a = length / 2
    return [(1, np.array([[-a, -a], [-a + arm, -a], [-a + arm, a - arm], [a, a - arm], [a, a], [-a, a]]))]


def t_shape(length: float, arm: float) -> list[Polygon]:
    a = length / 2
    return [(1, box(length, arm, 0, -a + arm / 2)), (1, box(arm, length, 0, 0))]


def u_shape(length: float, arm: float) -> list[Polygon]:
    return [(1, box(length, length)), (-1, box(length - 2 * arm, length - arm, 0, -arm / 2 - 1))]


def star(length: float, points: int = 5, inner: float = 0.45) -> list[Polygon]:
    r = length / 2
    outer = regular(points, r, -np.pi / 2)
    inside = regular(points, r * inner, -np.pi / 2 + np.pi / points)
    return [(1, np.stack([outer, inside], axis=1).reshape(-1, 2))]


def crescent(length: float, bite: float = 0.45) -> list[Polygon]:
    """A disc with an offset disc cut out (a crescent): `bite` is the cut disc's offset over the radius."""
    r = length / 2
    return [(1, ellipse(r, r)), (-1, ellipse(r * 0.85, r * 0.85, r * bite * 1.6, 0))]


def washer(length: float, hole: float) -> list[Polygon]:
    """A ring: the hole (a fraction `hole` of the diameter) is background."""
    r = length / 2
    return [(1, ellipse(r, r, n=64)), (-1, ellipse(r * hole, r * hole, n=48))]


def hex_nut(length: float, hole: float) -> list[Polygon]:
    r = length / 2
    return [(1, regular(6, r)), (-1, ellipse(r * hole, r * hole, n=48))]


def square_nut(length: float, hole: float) -> list[Polygon]:
    r = length / 2
    return [(1, box(length * 0.75, length * 0.75)), (-1, ellipse(r * hole * 0.75, r * hole * 0.75))]


def rounded_box(w: float, h: float, radius: float) -> list[Polygon]:
    """A rectangle with rounded corners (tile, tablet, candy)."""
    radius = min(radius, w / 2, h / 2)
    corners = []
    for cx, cy, start in ((w / 2 - radius, h / 2 - radius, 0), (-w / 2 + radius, h / 2 - radius, 90),
                          (-w / 2 + radius, -h / 2 + radius, 180), (w / 2 - radius, -h / 2 + radius, 270)):
        t = np.radians(np.linspace(start, start + 90, 6))
        corners.append(np.stack([cx + radius * np.cos(t), cy + radius * np.sin(t)], axis=1))
    return [(1, np.concatenate(corners))]


def draw(polygons: list[Polygon], angle: float, scale: float = 1.0, margin: int = 2) -> np.ndarray:
    """bool[h, w]: the shape turned by `angle` degrees and scaled, on the smallest canvas that holds it."""
    c, s = np.cos(np.radians(angle)), np.sin(np.radians(angle))
    turn = np.array([[c, -s], [s, c]]) * scale
    turned = [(sign, pts @ turn.T) for sign, pts in polygons]
    everything = np.concatenate([pts for _, pts in turned])
    lo = np.floor(everything.min(axis=0)) - margin
    hi = np.ceil(everything.max(axis=0)) + margin
    w, h = (hi - lo).astype(int) + 1
    mask = np.zeros((h, w), np.uint8)
    for sign, pts in turned:
        fixed = np.round((pts - lo) * 16).astype(np.int32)  # 4 bits of sub-pixel precision
        cv2.fillPoly(mask, [fixed], 1 if sign > 0 else 0, lineType=cv2.LINE_8, shift=4)
    return mask.astype(bool)


# --- surfaces ----------------------------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def photo(name: str) -> np.ndarray:
    """float32[H, W, 3] of a bundled scikit-image photograph (grey ones as three equal channels)."""
    from skimage import data

    image = getattr(data, name)()
    if image.ndim == 2:
        image = np.dstack([image] * 3)
    return np.ascontiguousarray(image[..., :3], dtype=np.float32)


def window(rng: np.random.Generator, name: str, h: int, w: int, zoom: tuple[float, float] = (0.8, 1.6)) -> np.ndarray:
    """float32[h, w, 3]: a random window of a photograph, resampled to h x w, randomly flipped and turned."""
    image = photo(name)
    ph, pw = image.shape[:2]
    f = rng.uniform(*zoom)
    wh, ww = min(max(int(h * f), 4), ph), min(max(int(w * f), 4), pw)
    y, x = int(rng.integers(0, ph - wh + 1)), int(rng.integers(0, pw - ww + 1))
    crop = image[y : y + wh, x : x + ww]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return cv2.resize(np.ascontiguousarray(crop), (w, h), interpolation=cv2.INTER_AREA if f > 1 else cv2.INTER_LINEAR)


def textured(
    rng: np.random.Generator, name: str, h: int, w: int, colour: tuple[float, float, float], strength: float = 0.6
) -> np.ndarray:
    """float32[h, w, 3]: `colour` modulated by a photograph's luminance: its standard score x 0.2 x `strength`
    (clipped at 2.5 sigma), so a window's large dark or bright areas (sky, hair) do not make a patchy product."""
    grey = window(rng, name, h, w).mean(axis=2)
    score = (grey - float(grey.mean())) / (float(grey.std()) + 4.0)
    return np.asarray(colour, np.float32) * (1.0 + 0.2 * strength * np.clip(score, -2.5, 2.5))[..., None]


def bevel(mask: np.ndarray, width: float, depth: float = 0.3) -> np.ndarray:
    """float32[h, w]: 1 - depth at the object's edges (inner ones too) rising to 1 within `width` px: a
    rounded rim, so objects look solid rather than cut from paper."""
    dist = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
    return (1.0 - depth) + depth * np.clip(dist / max(width, 0.5), 0.0, 1.0) ** 0.5


def metal(rng: np.random.Generator, mask: np.ndarray, colour: tuple[float, float, float], grain: np.ndarray,
          spots: int = 2) -> np.ndarray:
    """float32[h, w, 3]: a metal-like object: a domed height field lit from one side (diffuse + a sharp specular
    lobe), brushed grain, and `spots` bright highlight spots, all inside the mask.

    grain: float32[h, w] luminance of a photograph window (the brushing), any scale.
    """
    h, w = mask.shape
    dist = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
    height = np.sqrt(np.clip(dist / max(float(dist.max()), 1.0), 0, 1))
    gy, gx = np.gradient(cv2.GaussianBlur(height, (0, 0), 1.0) * max(h, w) * 0.35)
    norm = np.sqrt(gx**2 + gy**2 + 1.0)
    nx, ny, nz = -gx / norm, -gy / norm, 1.0 / norm
    a = rng.uniform(0, 2 * np.pi)
    light = np.array([0.6 * np.cos(a), 0.6 * np.sin(a), 0.8])
    diffuse = np.clip(nx * light[0] + ny * light[1] + nz * light[2], 0, 1)
    half = light + (0, 0, 1)
    half /= np.linalg.norm(half)
    specular = np.clip(nx * half[0] + ny * half[1] + nz * half[2], 0, 1) ** 30
    brushed = cv2.GaussianBlur(grain, (0, 0), sigmaX=4.0, sigmaY=0.5)
    brushed = 1.0 + 0.25 * (brushed / max(float(brushed.mean()), 1.0) - 1.0)
    rgb = np.asarray(colour, np.float32) * (0.25 + 0.75 * diffuse * brushed)[..., None]
    rgb += 230.0 * specular[..., None]
    ys, xs = np.nonzero(dist > 1.5)
    yy, xx = np.mgrid[0:h, 0:w]
    for i in rng.integers(0, len(ys), spots) if len(ys) else []:
        sigma = rng.uniform(0.8, 2.2) * max(h, w) / 40
        rgb += 255.0 * np.exp(-((yy - ys[i]) ** 2 + (xx - xs[i]) ** 2) / (2 * sigma**2))[..., None]
    return rgb


def printed_tile(rng: np.random.Generator, mask: np.ndarray, picture: str, card: tuple[float, float, float],
                 border: float) -> np.ndarray:
    """float32[h, w, 3]: a card-coloured item with a window of `picture` printed inside a `border`-px margin."""
    h, w = mask.shape
    rgb = np.empty((h, w, 3), np.float32)
    rgb[:] = card
    dist = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
    inner = dist > border
    ys, xs = np.nonzero(inner)
    if len(ys):
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        print_ = window(rng, picture, y1 - y0, x1 - x0, zoom=(1.5, 4.0))
        area = rgb[y0:y1, x0:x1]
        area[inner[y0:y1, x0:x1]] = print_[inner[y0:y1, x0:x1]]
    return rgb * bevel(mask, 2.0, 0.2)[..., None]


def turn(rgb: np.ndarray, mask: np.ndarray, angle: float, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(float32[h', w', 3], bool[h', w']): an item drawn upright (a printed tile, a photographed coin) turned by
    `angle` degrees and scaled, on a canvas that holds it. The mask is resampled nearest-neighbour and is the
    truth: exactly what is painted."""
    h, w = mask.shape
    side = int(np.ceil(np.hypot(h, w) * scale)) + 2
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    m[:, 2] += (side / 2 - w / 2, side / 2 - h / 2)
    out = cv2.warpAffine(rgb.astype(np.float32), m, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    turned = cv2.warpAffine(mask.astype(np.uint8), m, (side, side), flags=cv2.INTER_NEAREST).astype(bool)
    ys, xs = np.nonzero(turned)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    return out[y0:y1, x0:x1], turned[y0:y1, x0:x1]
