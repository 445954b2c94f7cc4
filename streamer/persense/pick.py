"""One click -> one object's mask: the configured decoder's answer to a single positive point prompt.

This is how a support mask is made without a paint program (`persense support --point`, the console's
click-to-pick). No support set is needed: the decoder is prompted without target guidance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engines.interfaces import EngineSet, ImageEmbedding
from streamer.errors import UserError
from streamer.persense.postprocess import instances_from_decoder
from streamer.persense.support_checks import support_problems

# A "mask" covering more of the frame than this is the belt or the background, not one product.
MAX_OBJECT_FRACTION = 0.25
# Fewer pixels than this is a speck of texture, not an object.
MIN_OBJECT_PIXELS = 16


@dataclass(frozen=True)
class Pick:
    """mask: bool[H, W] the object's pixels; score: the decoder's mask score; warning: None, or why the mask
    makes a poor support although it is usable (e.g. cut by the image border)."""

    mask: np.ndarray
    score: float
    warning: str | None = None

    @property
    def area(self) -> int:
        return int(np.count_nonzero(self.mask))

    @property
    def bbox(self) -> tuple[int, int, int, int]:
        ys, xs = np.nonzero(self.mask)
        return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def parse_point(text: str) -> tuple[float, float]:
    """'X,Y' (pixels, may be fractional) -> (x, y); UserError otherwise."""
    parts = text.split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        x, y = float(parts[0]), float(parts[1])
    except ValueError:
        raise UserError(f"--point must be X,Y in pixels (e.g. 120,80), got {text[:40]!r}") from None
    if not (np.isfinite(x) and np.isfinite(y)):
        raise UserError(f"--point must be finite numbers, got {text[:40]!r}")
    return x, y


def check_point(point_xy: tuple[float, float], frame_hw: tuple[int, int]) -> None:
    """UserError unless (x, y) lies inside a frame of (H, W) pixels."""
    x, y = point_xy
    h, w = frame_hw
    if not (0 <= x < w and 0 <= y < h):
        raise UserError(f"the point ({x:.0f}, {y:.0f}) is outside the {w}x{h} image: click on an object inside it")


def pick_object(engines: EngineSet, image_rgb: np.ndarray, point_xy: tuple[float, float],
                embedding: ImageEmbedding | None = None) -> Pick:
    """The mask the decoder makes at `point_xy` on `image_rgb` (uint8[H, W, 3]).

    embedding: the image's encoder output where it is already known (else it is encoded here).
    Raises UserError when the point is outside the image, no object is there, or the mask is the background.
    Not thread-safe with the pipeline: call it where the pipeline's engines may be used (the inference thread).
    """
    h, w = image_rgb.shape[:2]
    check_point(point_xy, (h, w))
    if embedding is None:
        embedding = engines.encoder.encode(image_rgb)
    points = np.asarray([point_xy], np.float32)
    found = instances_from_decoder(engines.decoder.decode_points(embedding, points), points, (h, w), min_area=1)
    x, y = point_xy
    if not found or found[0].area < MIN_OBJECT_PIXELS:
        raise UserError(f"no object at ({x:.0f}, {y:.0f}): click inside one object")
    inst = found[0]
    mask = np.zeros((h, w), bool)
    inst.paste(mask)
    fraction = float(mask.mean())
    if fraction > MAX_OBJECT_FRACTION:
        raise UserError(f"the mask at ({x:.0f}, {y:.0f}) covers {fraction:.0%} of the image: that is the background, "
                        "not one object; click inside one object")
    notes = []
    if mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any():
        notes.append("the object is cut by the image border: a whole object in view makes a better support")
    # What makes a poor support also tells a click on the background: its "outline" does not stand out from the
    # edges around it (5 of 8 clicks on the simulator's belt; none of its products).
    notes += [problem for problem in support_problems(image_rgb, mask) if "image border" not in problem]
    return Pick(mask, float(inst.score), "; ".join(notes) or None)
