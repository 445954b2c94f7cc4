"""Which of an item's views show all of it, from their sizes alone.

A segmenter that fails on an item mostly finds part of it: an inner outline (shading, texture, an engraving), or
one of two pieces. Such views are smaller than the item, often by half, and can be as many as the views of the
whole item (an item 1.6 times the support's size was measured whole in 56-70% of its views by the embedded
engines, and only once in several thousand views of in-spec items did a mask come out more than 10% larger than
its item; benchmarks/rejects.py, docs/rejects-calibration.md). Their median then lands anywhere between the two.
The views that show the whole item are those about the size of the largest size several views agree on: a
single view too large (a mask leaked into the background, two items merged for a frame) is not several views.

Pure numpy; sizes are any length measure (equivalent diameters), one per view.
"""

from __future__ import annotations

import math

import numpy as np

# Views within this fraction of a size agree on it: the in-spec items' views of the flow simulator spread by at
# most 6% around their item's size (95th percentile 4%), its parts of items lie 25-70% below it.
AGREE_TOLERANCE = 0.08
# A size is agreed on by at least this many views, and at least this share of them.
AGREE_LEAST = 3
AGREE_SHARE = 0.2


def whole_item_views(sizes: np.ndarray, least: int = AGREE_LEAST, share: float = AGREE_SHARE,
                     tolerance: float = AGREE_TOLERANCE) -> np.ndarray:
    """float[N] sizes of an item's views -> bool[N]: the views within `tolerance` (relative) of the largest size
    that at least max(`least`, `share` x N) views lie within `tolerance` of. Every view where there are fewer
    views than that, or no size is agreed on (NaN sizes agree on nothing)."""
    sizes = np.asarray(sizes, np.float64).reshape(-1)
    need = max(least, math.ceil(share * len(sizes)))
    if len(sizes) < need:
        return np.ones(len(sizes), bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        near = np.abs(sizes[None, :] / sizes[:, None] - 1.0) <= tolerance  # [i, j]: view j agrees with size i
    agreed = near.sum(axis=1) >= need
    if not agreed.any():
        return np.ones(len(sizes), bool)
    return near[np.flatnonzero(agreed)[np.argmax(sizes[agreed])]]
