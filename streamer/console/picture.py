"""The live view's picture: the product's objects marked in one colour per product, as outlines or light fills.

Filled masks in a colour per object covered the items the operator wants to see (issue 25); an outline keeps
them visible. The colour follows the support (one product, one colour, the same on every page and camera), and
the page shows it beside the support. No count is written on the picture: the page draws it from the same result
as its panel, so that the two never disagree.
"""

from __future__ import annotations

import hashlib

import cv2
import numpy as np

from streamer.errors import UserError
from streamer.types import SegmentationResult

STYLES = ("outline", "fill", "none")
# Bright, well-separated colours that stand out on grey, brown and green belts (RGB).
PALETTE = ((0, 230, 255), (255, 64, 200), (255, 176, 0), (120, 255, 80), (80, 140, 255), (255, 90, 90))
FILL_ALPHA = 0.3


def product_colour(support_id: str | None) -> tuple[int, int, int]:
    """The product's colour: fixed by its support id, so every page shows a product in the same colour."""
    if not support_id:
        return PALETTE[0]
    return PALETTE[int(hashlib.sha1(support_id.encode()).hexdigest(), 16) % len(PALETTE)]


def product_colours(names: list[str]) -> dict[str, tuple[int, int, int]]:
    """The colours of a camera's several products, one each in their order (a hash of two supports could meet)."""
    return {name: PALETTE[k % len(PALETTE)] for k, name in enumerate(names)}


def hex_colour(colour: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*colour)


def check_style(style: str) -> str:
    if style not in STYLES:
        raise UserError(f"style must be one of {', '.join(STYLES)}, got {style[:32]!r}")
    return style


def draw(image_rgb: np.ndarray, result: SegmentationResult, colour: tuple[int, int, int], style: str) -> np.ndarray:
    """uint8[H, W, 3] RGB: the frame with the result's objects outlined (or lightly filled) in `colour`, or where the
    camera counts several products, each product's in its own (product_colours)."""
    out = image_rgb.copy()
    if style == "none":
        return out
    colours = product_colours(list(result.products))
    for inst in result.instances:
        colour = colours.get(inst.product, colour)
        paint = np.asarray(colour, np.float32)
        x0, y0, x1, y1 = inst.bbox
        if style == "fill":
            region = out[y0:y1, x0:x1]
            region[inst.mask] = (region[inst.mask] * (1 - FILL_ALPHA) + paint * FILL_ALPHA).astype(np.uint8)
        contours, _ = cv2.findContours(inst.mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, colour, 2 if style == "outline" else 1, offset=(x0, y0))
    return out
