"""The frame's own belt, learnt from the frame where the support image never showed it.

A support taken on one belt and a frame of another (a texture, a colour, a light the support image never showed):
the classifier half-believes the new belt (probability 0.3-0.6 around items at 1.0), masks spill onto it and
pieces of it pass as items. After a first look, the cells well away from every object found, and less product-
like than those objects, are shown to the classifier as "not the product" beside the support's own cells, and
the frame is classified again. Stateless: each frame that needs it learns its own belt (a stream's results do not
depend on which frames came before, nor on which worker took them).
"""

from __future__ import annotations

import cv2
import numpy as np

from engines.anyshape.classifier import PixelClassifier, refit
from engines.anyshape.instances import Regions, product_cells

# Learn the frame's belt only where its first look found at least this many objects that are each a component of
# their own (the frame then shows which cells are the product; fewer is no evidence of which are belt) ...
_MIN_OBJECTS = 3
# ... and where at least this share of the frame is product-like cells away from every whole object found (an
# unfamiliar belt; objects fitted in clumps do not count: silhouettes fitted at 0.75 of the support's size into
# pieces of a gravel belt would hide it). Measured on the category development set: a belt the support image
# showed leaves 0-7% (low-contrast slabs 7.0%), unfamiliar ones 11.5% (washers on a stone texture) and 20%
# (chrome caps on gravel: 34 counted -> 30 of 30); the validation split at most 7.8% (its chrome caps on a
# graded texture; measured away from every object it was at most 6.1%). Adapting every frame instead changed
# same-belt cases by +-2 items either way (the refit's other random trees).
_UNFAMILIAR = 0.08
# Cells within this share of the support's inner radius of an object are not belt (its rim's blur).
_MARGIN = 0.5
# Belt cells: below this share of the mean probability of the frame's median separate item (cells between are
# undecided: a darker item the first look missed is not shown as belt).
_BELT_SHARE = 0.8
# Frame cells added at most (the support's own are at most 2 x 2500 per light variant): bounds the refit's time.
_MAX_CELLS = 2500


def belt_samples(bank: np.ndarray, probability: np.ndarray, regions: Regions, inner_radius: float,
                 seed: int = 0) -> np.ndarray | None:
    """The frame's filter bank float32[P, h, w], its probability float32[h, w] and first regions (same grid) ->
    float32[M, P] the filter responses of its belt cells to refit with, or None where the frame's belt is
    familiar or the frame tells too little."""
    labels = regions.labels
    if int(np.count_nonzero(regions.whole)) < _MIN_OBJECTS:
        return None
    count = int(labels.max())
    sums = np.bincount(labels.ravel(), weights=probability.ravel(), minlength=count + 1)[1:]
    sizes = np.maximum(np.bincount(labels.ravel(), minlength=count + 1)[1:], 1)
    means = sums / sizes
    level = _BELT_SHARE * float(np.median(means[regions.whole]))
    # Pieces of the belt the first look took for items are less product-like than the items: belt too.
    sure = np.concatenate([[False], means >= level])[labels]
    margin = max(1, int(round(_MARGIN * inner_radius)))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1,) * 2)
    near = cv2.dilate(sure.astype(np.uint8), disc) > 0
    near_whole = cv2.dilate(np.concatenate([[False], regions.whole & (means >= level)])[labels].astype(np.uint8),
                            disc) > 0
    if float(np.mean(product_cells(probability) & ~near_whole)) < _UNFAMILIAR:
        return None
    belt = np.flatnonzero(~near & (probability < level))
    if len(belt) == 0:
        return None
    if len(belt) > _MAX_CELLS:
        belt = np.random.default_rng(seed).choice(belt, _MAX_CELLS, replace=False)
    return bank.reshape(bank.shape[0], -1)[:, belt].T.astype(np.float32)


def with_belt(classifier: PixelClassifier, belt: np.ndarray) -> PixelClassifier:
    """The classifier fitted again with these belt cells (float32[M, P]) as "not the product"."""
    return refit(classifier, belt, np.zeros(len(belt), np.int8))
