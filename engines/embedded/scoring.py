"""Mask quality scores in [0, 1] for the decoder's regions: appearance purity x shape x size agreement.

The pipeline takes the best-scoring masks as the density generator's exemplars, so a high score must mean
"one whole, typical object": confidently foreground, elliptical (not a merged pair or a sliver) and of the
call's typical size.
"""

from __future__ import annotations

import numpy as np


def region_scores(labels: np.ndarray, groups: np.ndarray, prob: np.ndarray, n: int) -> np.ndarray:
    """float32[N] score per prompt from its group's region.

    Args:
        labels: int32[h, w] g + 1 for group g's cells, 0 elsewhere.
        groups: int[N] each prompt's group.
        prob: float32[h, w] foreground probability.
    """
    g = int(groups.max()) + 1 if len(groups) else 0
    # Only labelled cells matter: index them once.
    index = np.flatnonzero(labels)
    flat = labels.ravel()[index]
    ys, xs = np.divmod(index.astype(np.float64), labels.shape[1])
    count = np.bincount(flat, minlength=g + 1)[1:].astype(np.float64)
    safe = np.maximum(count, 1.0)

    def mean(values: np.ndarray) -> np.ndarray:
        return np.bincount(flat, weights=values, minlength=g + 1)[1:] / safe

    purity = mean(prob.ravel()[index].astype(np.float64))
    mx, my = mean(xs), mean(ys)
    vxx = mean(xs * xs) - mx * mx + 1.0 / 12
    vyy = mean(ys * ys) - my * my + 1.0 / 12
    vxy = mean(xs * ys) - mx * my
    # An ellipse of area A has covariance determinant (A / 4 pi)^2: the ratio is 1 for ellipses, less otherwise.
    det = np.maximum(vxx * vyy - vxy * vxy, 1e-9)
    ellipse = np.clip(count / (4 * np.pi * np.sqrt(det)), 0.0, 1.0)
    present = count > 0
    size = np.ones(g)
    if present.sum() >= 3:
        typical = float(np.median(count[present]))
        size = np.exp(-np.abs(np.log(safe / typical)))
    score = np.where(present, purity * ellipse**2 * np.sqrt(size), 0.0)
    return score[groups].astype(np.float32)
