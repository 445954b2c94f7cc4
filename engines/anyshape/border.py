"""Items cut by the frame's edge: on a conveyor every item enters and leaves the view, so a region that touches
the frame's edge is judged against the support object CUT by that edge, not against the whole object.

A region touching the edge is one cut item when it could be the part of one placement of the support's
silhouette (any angle, the items' size spread) that lies inside the frame: no larger than a whole item, and its
cells inside that placement. A region too large for that is several items (a cut one beside a whole one, two cut
ones side by side) and is split like any clump. All on the classifier's grid (cells).
"""

from __future__ import annotations

from enum import Enum

import cv2
import numpy as np

from engines.anyshape.shape import ShapeStats
from engines.anyshape.templates import SIZE_SPREAD, Silhouettes

# A cut item's cells lie inside one placement of the (spread, one-cell grown) silhouette at least at this share:
# the classifier's outline is a cell uncertain and a neighbour may add a few cells. Measured on the default
# simulator with a rectangle's support (embedded-v4; every 5th frame of a 2-minute recording, 308 regions at the
# edge): regions of one rectangle 0.989-1.0 (265); regions of several objects, each with a tenth of its cells,
# 0.74-1.0 (42; the 15 under 0.9 hold 1.16-1.66 times the support's area: judged several, they go to the clump's
# split).
_CONTAINED = 0.9
# A cut item is looked at from this many cells on: the foreground's opening (2 x 2 cells) leaves no smaller
# region. The smallest region of one cut rectangle found on the default simulator (same measure) was 7 cells; a
# sliver one cell deep is gone before (5 px of depth on a 3 px grid: tests/test_anyshape_border.py).
MIN_CUT_CELLS = 4


class Cut(Enum):
    ITEM = "item"  # one item cut by the frame's edge
    SEVERAL = "several"  # more than one item could hold: split it
    NONE = "none"  # no part of one item, and too small for several


def touches_border(slices: tuple[slice, slice], hw: tuple[int, int]) -> bool:
    ys, xs = slices
    return ys.start == 0 or xs.start == 0 or ys.stop == hw[0] or xs.stop == hw[1]


def judge_cut(crop: np.ndarray, slices: tuple[slice, slice], grid_hw: tuple[int, int], support: ShapeStats,
              shapes: Silhouettes) -> Cut:
    """A region touching the frame's edge (bool crop of the grid at `slices`, the grid (h, w)) -> whether it is
    one item cut by the edge (Cut.ITEM), larger than any cut item (Cut.SEVERAL), or neither (Cut.NONE)."""
    area = float(np.count_nonzero(crop))
    if area > SIZE_SPREAD ** 2 * support.area:
        return Cut.SEVERAL
    if area < MIN_CUT_CELLS:
        return Cut.NONE
    return Cut.ITEM if contained_share(crop, slices, grid_hw, shapes) >= _CONTAINED else Cut.SEVERAL


def contained_share(crop: np.ndarray, slices: tuple[slice, slice], grid_hw: tuple[int, int],
                    shapes: Silhouettes) -> float:
    """The largest share of the region's cells inside one placement of the support's silhouette (grown by the
    items' size spread and a cell) that covers no more of the frame than the region's box and whatever lies
    beyond the frame's edge: the placements reach past the edges the region touches, not into the frame."""
    region = crop.astype(np.float32)
    touched = (slices[0].start == 0, slices[0].stop == grid_hw[0], slices[1].start == 0, slices[1].stop == grid_hw[1])
    best = 0.0
    for template, (grow_y, grow_x) in shapes.spread:
        th, tw = template.shape
        # Room beyond the edges the region touches (a placement may hang past them); on the frame's side only
        # the silhouette's growth (a cut item shows all of itself that is in view).
        room = (th - 1, th - 1, tw - 1, tw - 1)
        growth = (grow_y, grow_y, grow_x, grow_x)
        padded = cv2.copyMakeBorder(region, *(r if t else g for r, t, g in zip(room, touched, growth)),
                                    cv2.BORDER_CONSTANT, value=0.0)
        # A placement turned across the region (a thin sliver, a rod's end) needs more room than its box.
        more_y, more_x = max(th - padded.shape[0], 0), max(tw - padded.shape[1], 0)
        if more_y or more_x:
            padded = cv2.copyMakeBorder(padded, more_y, more_y, more_x, more_x, cv2.BORDER_CONSTANT, value=0.0)
        best = max(best, float(cv2.matchTemplate(padded, template, cv2.TM_CCORR).max()))
    return best / max(float(region.sum()), 1.0)
