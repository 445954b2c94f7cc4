"""Shape-based matching for clumps: the support object's own silhouette, turned and scaled, fitted into a clump of
product-like cells one item at a time (industrial shape-based matching's idea, on the classifier's foreground).

Where items cross or lie side by side with no gap (rods in a pile, tablets in a heap), the distance transform has
no neck to split at; the silhouette still fits each item where it lies, at its own angle.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from engines.anyshape.shape import fill_holes, inner_radius

# Scales and angle step (degrees). The support is the large, clear example a person picks, and a batch's items
# are smaller by up to a quarter of its length: the silhouette is also tried at 0.875 and 0.75 of it. Measured on
# the category development set with its heap of crackers (46-62 px boxes touching and overlapping, added for
# this): one scale 57 of 90 (F1 0.626), (0.8, 0.9, 1) 62, (0.7, 0.85, 1) 65, (0.75, 0.875, 1) 86-87 once every
# cell's best pose is tried (F1 0.909); bolts, crescents, hex nuts, cross-image tiles and chrome caps gained,
# none lost. Where a frame shows whole items, sizes under its typical one are not tried (instances.find_regions):
# the simulator's products mix has tiles of the support's size, and silhouettes at 0.75 of it fitted pieces of
# them (`python -m streamer.products_eval --seed 2`: tile count error 0% -> 10.5%; with the rule 0% again).
# Every 15 degrees: the silhouette's inside is shrunk by a cell, so an item 7 degrees off still holds most of it
# (three scales every 10 degrees scored as one every 15 on 32 cases, in five times the correlations).
_SCALES = (0.75, 0.875, 1.0)
_ANGLE_STEP = 15
# A placement is an item when at least this share of the silhouette's inside lies on the clump (with three scales
# 0.82 and 0.86 gave the same tables on both category sets); placements are looked at from this rank on too (the
# fit plus half the ring's share off the clump or on edges: a fit of _MIN_FIT with no ring at all is the least).
_MIN_FIT = 0.82
# ... and at most this share of it on items placed before (items overlap by up to 20%).
_MAX_CLAIMED = 0.25
# The items' linear size spread (the shape tolerances' +-15%: engines.anyshape.shape): a silhouette grown by it
# holds any one item, whole or cut by the frame's edge (engines.anyshape.border).
SIZE_SPREAD = 1.15


@dataclass(frozen=True)
class Silhouettes:
    """The support object's silhouette at every angle and scale tried: masks bool[th, tw] and the (angle, scale)
    of each. Angles cover the silhouette's own symmetry only (a rod repeats after 180 degrees, a
    square after 90)."""

    area: float  # the support object's area, cells
    inner_radius: float  # its inscribed circle's radius, cells
    masks: tuple[np.ndarray, ...]
    cores: tuple[np.ndarray, ...]  # the masks shrunk by a cell (the masks themselves where that leaves nothing)
    # float32[th + 2, tw + 2, 2] per mask: its core / its cells, and the ring of cells just outside it / their count
    stacked: tuple[np.ndarray, ...]
    poses: tuple[tuple[float, float], ...]
    # per mask: float32 the mask scaled by SIZE_SPREAD, its holes filled and grown by a cell, and the cells (height,
    # width) it grew by: what one item cut by the frame's edge may fill (engines.anyshape.border)
    spread: tuple[tuple[np.ndarray, tuple[int, int]], ...]

    def from_scale(self, smallest: float) -> "Silhouettes":
        """These silhouettes without the poses under `smallest` times the support's size (the largest scale is
        always kept)."""
        floor = min(smallest, max(scale for _, scale in self.poses))
        keep = [k for k, (_, scale) in enumerate(self.poses) if scale >= floor]
        if len(keep) == len(self.poses):
            return self
        return Silhouettes(self.area, self.inner_radius, *(tuple(items[k] for k in keep) for items in
                                                           (self.masks, self.cores, self.stacked, self.poses,
                                                            self.spread)))


def _turned(mask: np.ndarray, angle: float, scale: float) -> np.ndarray:
    """bool[h, w] -> float32 the mask turned by `angle` degrees and scaled, in a box that holds it whole."""
    h, w = mask.shape
    side = int(np.ceil(np.hypot(h, w) * scale)) + 2
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    matrix[:, 2] += (side / 2 - w / 2, side / 2 - h / 2)
    turned = cv2.warpAffine(mask.astype(np.float32), matrix, (side, side), flags=cv2.INTER_LINEAR) >= 0.5
    ys, xs = np.nonzero(turned)
    if len(xs) == 0:
        return np.zeros((1, 1), np.float32)
    return turned[ys.min():ys.max() + 1, xs.min():xs.max() + 1].astype(np.float32)


def _period(mask: np.ndarray) -> int:
    """The smallest turn (90, 180 or 360 degrees) after which the silhouette looks the same (IoU >= 0.85)."""
    for period in (90, 180):
        turned = _turned(mask, period, 1.0) > 0
        base = _turned(mask, 0, 1.0) > 0
        if turned.shape == base.shape and (turned & base).sum() >= 0.85 * (turned | base).sum():
            return period
    return 360


def silhouettes(mask: np.ndarray) -> Silhouettes:
    """bool[h, w] the support object on the classifier's grid (cropped or not) -> its Silhouettes."""
    ys, xs = np.nonzero(mask)
    crop = mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    masks, poses = [], []
    for angle in range(0, _period(crop), _ANGLE_STEP):
        for scale in _SCALES:
            masks.append(_turned(crop, angle, scale))
            poses.append((float(angle), scale))
    cores = []
    for m in masks:
        core = cv2.erode(m, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0)
        cores.append(core if core.sum() >= 0.25 * m.sum() else m)
    rings = []
    for m in masks:
        grown = np.pad(m, 1)
        rings.append(cv2.dilate(grown, np.ones((3, 3), np.uint8)) - grown)
    stacked = [np.dstack([np.pad(c, 1) / max(float(c.sum()), 1.0), r / max(float(r.sum()), 1.0)]).astype(np.float32)
               for c, r in zip(cores, rings)]
    return Silhouettes(float(crop.sum()), inner_radius(crop), tuple(m > 0 for m in masks), tuple(c > 0 for c in cores),
                       tuple(stacked), tuple(poses), tuple(_spread(m) for m in masks))


def _spread(mask: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """A pose's mask (float32 or bool) scaled by SIZE_SPREAD, its holes filled and grown by a cell -> (float32
    mask, the cells it grew by in height and width). Its outline only: a smaller item's hole lies inside the grown
    silhouette's, its ring does not."""
    scaled = cv2.resize(np.asarray(mask, np.uint8), None, fx=SIZE_SPREAD, fy=SIZE_SPREAD,
                        interpolation=cv2.INTER_NEAREST)
    grown = cv2.dilate(np.pad(fill_holes(scaled > 0), 1).astype(np.uint8), np.ones((3, 3), np.uint8))
    return grown.astype(np.float32), (grown.shape[0] - mask.shape[0], grown.shape[1] - mask.shape[1])


def fit_items(clump: np.ndarray, cuts: np.ndarray, shapes: Silhouettes) -> list[tuple[np.ndarray, float]]:
    """bool[h, w] one clump of product-like cells and bool[h, w] the image's edges that part items -> the items
    fitted in it: (bool[h, w] the silhouette's cells on the clump, the placement's rank), best first.

    A silhouette's inside (shrunk by a cell: the classifier's outline is a cell uncertain) must lie on the clump
    (share >= _MIN_FIT); placements rank by that share plus the share of their surrounding ring that lies off
    the clump or on edges (in a fat clump, a placement straddling two items fits as well as the items
    themselves, but its ring runs over them). One two-channel correlation a pose gives both; each cell offers
    its best pose, and the cells that rank above their neighbours are the placements tried."""
    h, w = clump.shape
    # Channel 0: +1 on the clump, -1 off it; channel 1: 1 where an item may end. One cell of margin all round.
    fields = np.dstack([np.where(clump, 1.0, -1.0), (~clump | cuts)]).astype(np.float32)
    best = best_pose = None
    for k, template in enumerate(shapes.stacked):
        th, tw = template.shape[:2]
        if th > h + 4 or tw > w + 4:
            continue
        # Every pose's rank is laid out by its silhouette's centre (cell (y, x) of the map: centre at y, x), so
        # that the poses compare cell by cell.
        top, left = (th - 2) // 2 + 1, (tw - 2) // 2 + 1
        padded = cv2.copyMakeBorder(fields, top, th - top, left, tw - left, cv2.BORDER_CONSTANT, value=(-1.0, 1.0))
        # (inside share * 2 - 1) + ring share, from the templates' normalised channels; + 1 makes it fit + ring.
        rank = (cv2.matchTemplate(padded, template, cv2.TM_CCORR)[:h, :w] + 1.0) / 2.0
        if best is None:
            best, best_pose = rank, np.full((h, w), k, np.int32)
        else:
            better = rank > best
            best = np.where(better, rank, best)
            best_pose[better] = k
    if best is None:
        return []
    peaks = (best >= _MIN_FIT) & (best >= cv2.dilate(best, np.ones((3, 3), np.uint8)))
    cy, cx = np.nonzero(peaks)
    rank, pose = best[cy, cx], best_pose[cy, cx]
    order = np.argsort(-rank, kind="stable")
    claimed = np.zeros((h, w), bool)
    items = []
    for score, k, x, y in zip(rank[order].tolist(), pose[order].tolist(), cx[order].tolist(), cy[order].tolist()):
        # The silhouette's top-left cell, then its cells inside the clump's box (a placement may hang over it).
        mh, mw = shapes.masks[k].shape
        x, y = x - mw // 2, y - mh // 2
        x0, y0 = max(x, 0), max(y, 0)
        template = shapes.masks[k][y0 - y: h - y, x0 - x: w - x]
        core = shapes.cores[k][y0 - y: h - y, x0 - x: w - x]
        th, tw = template.shape
        on_clump = clump[y0:y0 + th, x0:x0 + tw]
        core_cells = np.count_nonzero(core)
        if core_cells == 0 or np.count_nonzero(core & on_clump) < _MIN_FIT * core_cells:
            continue
        window = claimed[y0:y0 + th, x0:x0 + tw]
        if np.count_nonzero(window & template) > _MAX_CLAIMED * np.count_nonzero(template):
            continue
        window |= template
        placed = np.zeros((h, w), bool)
        placed[y0:y0 + th, x0:x0 + tw] = template & on_clump
        items.append((placed, score))
    return items
