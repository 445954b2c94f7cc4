"""The pixel classifier learnt from the one-shot support: ilastik's recipe, fitted once per support.

Positives are the support mask's cells; negatives a ring just outside it (what the product must be told
apart from: the belt beside it, its shadow, its neighbours' rims) and a few far cells. The support is also
shown under other light (brightness x0.6 and x1.4, a warmer and a cooler tint), so that a frame under other
light than the support's still matches. An extremely randomised forest: fitted in a fraction of a second, and
its depth lets it learn "brighter than the belt but darker than the highlight" that a linear rule cannot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from engines.anyshape.filters import PLANE_NAMES, filter_bank, opponent_planes
from engines.frame_cache import compute_once

if TYPE_CHECKING:  # imported for real when a support is first learnt (see fit_classifier)
    from sklearn.ensemble import ExtraTreesClassifier

# Light the support is also shown under: (brightness factor, (red, green, blue) tint).
_AUGMENTATIONS = (
    (1.0, (1.0, 1.0, 1.0)),
    (0.6, (1.0, 1.0, 1.0)),
    (1.4, (1.0, 1.0, 1.0)),
    (1.0, (1.12, 1.0, 0.86)),
    (1.0, (0.88, 1.0, 1.14)),
)
# The near ring: from this many support radii outside the mask (cells closer are ambiguous: the rim's blur)...
_RING_INNER = 0.15
# ... to this many.
_RING_OUTER = 1.0
# Far negatives: what else the support image shows (other products, the belt further off).
_FAR_SAMPLES = 600
# Materials: the support image's cells are grouped into this many clusters of their filter responses...
_MATERIALS = 8
# ... and a material that makes up at least this share of the support object's inside is the product's:
# no cell of it is a negative (in a dense scene the ring and the far cells are mostly other items).
_PRODUCT_MATERIAL = 0.08
# Cells per class and light variant at most (bounds the fit's time on large supports).
_MAX_SAMPLES = 2500
# A faint support (its median colour within this distance of its surroundings', in the opponent planes' units:
# lightness 0-100) is told by its light and colour against the belt and its outline, not by its texture: its
# surface's grain and pattern vary from item to item and would be all the classifier learnt of it. Measured on
# both category sets' and both real-image sets' supports: the low-contrast slabs 3.7 and 4.5, every other 8.8 on
# (small coins on brick; the any-shape supports from 14.5: steel pins).
_FAINT = 7.0
# ... and the planes a faint support's classifier reads: the texture planes (fine gradients, Laplacian and Hessian
# of the parts' scale, local contrast) left out. Measured on the category development set's low-contrast slabs:
# median F1 0.373 -> 0.707 (cross-image 1 -> 18 of 30; belt alone 0 -> 1 counted); leaving out also the coarse
# gradient, the coarse Laplacian or the finest colour planes scored 0.71, 0.35 and 0.56.
_TEXTURE_PLANES = ("gradient s0", "gradient s1", "laplacian s1", "hessian max s1", "hessian min s1",
                   "local contrast s1", "local contrast s2")
LOOK_PLANES = tuple(i for i, name in enumerate(PLANE_NAMES) if name not in _TEXTURE_PLANES)
ALL_PLANES = tuple(range(len(PLANE_NAMES)))
# The forest: 10 trees scored as well as 16 on both category sets (mean F1 0.762 against 0.755 over their 32
# scored non-round cases) for 40% less prediction time; depth 10 and 8 samples a leaf keep a tree from learning
# single cells of the support.
_FOREST = dict(n_estimators=10, max_depth=10, min_samples_leaf=8, max_features="sqrt")


def relit(image_rgb: np.ndarray, brightness: float, tint: tuple[float, float, float]) -> np.ndarray:
    """uint8[H, W, 3] -> the same scene under other light (channel gains), clipped to uint8."""
    gains = np.asarray(tint, np.float32) * brightness
    return np.clip(image_rgb.astype(np.float32) * gains, 0, 255).astype(np.uint8)


def grid_image(image_rgb: np.ndarray, stride: int) -> np.ndarray:
    """uint8[H, W, 3] -> uint8[ceil(H / stride), ceil(W / stride), 3] by area averaging."""
    if stride == 1:
        return image_rgb
    h, w = image_rgb.shape[:2]
    size = (-(-w // stride), -(-h // stride))
    return cv2.resize(image_rgb, size, interpolation=cv2.INTER_AREA)


def materials(samples: np.ndarray, seed: int) -> np.ndarray:
    """float32[N, F] filter responses -> int32[N] material (cluster) of each, by k-means on standardised responses."""
    scaled = (samples - samples.mean(0)) / (samples.std(0) + 1e-6)
    rng = np.random.default_rng(seed)
    subset = scaled[rng.choice(len(scaled), min(len(scaled), 6000), replace=False)]
    cv2.setRNGSeed(seed)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.01)
    _, _, centres = cv2.kmeans(subset.astype(np.float32), _MATERIALS, None, criteria, 1, cv2.KMEANS_PP_CENTERS)
    # |x - c|^2 = |x|^2 - 2 x.c + |c|^2, and |x|^2 is the same for every centre: an N x k product, not the
    # N x k x F differences (480 MB for a 4-megapixel support).
    scores = scaled.astype(np.float32) @ centres.T.astype(np.float32) - 0.5 * (centres * centres).sum(1)
    return np.argmax(scores, axis=1).astype(np.int32)


def product_materials(material: np.ndarray, mask_grid: np.ndarray, ring: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int32[h * w] materials, the support mask and its ring bool[h, w] -> (bool[_MATERIALS] the product's
    materials, bool[_MATERIALS] those of them that are the product's alone).

    A product material makes up at least _PRODUCT_MATERIAL of the mask's core (shrunk by a cell, so the rim's
    blend with the belt does not count); it is the product's alone where it is at least twice as common in the
    core as in the ring (not a colour the belt shares)."""
    core = cv2.erode(mask_grid.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    if core.sum() < 4:
        core = mask_grid
    inside = np.bincount(material[core.ravel()], minlength=_MATERIALS) / max(core.sum(), 1)
    around = np.bincount(material[ring.ravel()], minlength=_MATERIALS) / max(ring.sum(), 1)
    product = inside >= _PRODUCT_MATERIAL
    return product, product & (inside >= 2.0 * around)


def training_cells(
    mask_grid: np.ndarray, radius: float, rng: np.random.Generator, material: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """bool[h, w] support mask on the grid, its radius in cells, int32[h * w] materials -> (flat indices of the
    positive cells, of the negative ones).

    Where materials are given, the cells of the product's own materials elsewhere in the support image (other
    items of the product, in a dense scene) are positives too: they show the product's variation (brighter,
    darker, other prints of its kind) that one example cannot."""
    mask8 = mask_grid.astype(np.uint8)
    inner = max(1, int(round(_RING_INNER * radius)))
    outer = max(inner + 2, int(round(_RING_OUTER * radius)))
    near = cv2.dilate(mask8, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * inner + 1,) * 2)) > 0
    ring = cv2.dilate(mask8, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * outer + 1,) * 2)) > 0
    positives = np.flatnonzero(mask_grid)
    negatives = np.flatnonzero(ring & ~near)
    far = np.flatnonzero(~ring)
    if material is not None:
        product, own = product_materials(material, mask_grid, ring & ~near)
        unlike = negatives[~product[material[negatives]]]
        # A support on a uniform region has no other material around it: the ring as it is, then.
        negatives = unlike if len(unlike) else negatives
        alike = far[own[material[far]]]
        far = far[~product[material[far]]]
        if len(alike):
            extra = rng.choice(alike, min(len(alike), len(positives)), replace=False)
            positives = np.concatenate([positives, extra])
    if len(far):
        negatives = np.concatenate([negatives, rng.choice(far, min(_FAR_SAMPLES, len(far)), replace=False)])
    if len(positives) > _MAX_SAMPLES:
        positives = rng.choice(positives, _MAX_SAMPLES, replace=False)
    if len(negatives) > _MAX_SAMPLES:
        negatives = rng.choice(negatives, _MAX_SAMPLES, replace=False)
    return positives, negatives


@dataclass
class PixelClassifier:
    """Product-or-not for every cell of a filter bank."""

    forest: "ExtraTreesClassifier"
    stride: int
    scales: tuple[float, float, float]
    samples: np.ndarray | None = None  # float32[N, N_PLANES] the cells it was fitted on (for a refit)
    classes: np.ndarray | None = None  # int8[N] their classes (1 the product)
    planes: tuple[int, ...] = ALL_PLANES  # the bank's planes the forest reads (LOOK_PLANES for a faint support)

    def bank(self, image_rgb: np.ndarray, memo: dict | None = None) -> np.ndarray:
        """uint8[H, W, 3] -> float32[N_PLANES, ceil(H / stride), ceil(W / stride)] the image's filter bank.

        memo: this image's planes on this grid step that other supports computed (see filters.filter_bank)."""
        if memo is None:
            return filter_bank(grid_image(image_rgb, self.stride), self.scales)
        return filter_bank(self.grid(image_rgb, memo), self.scales, memo)

    def grid(self, image_rgb: np.ndarray, memo: dict) -> np.ndarray:
        """uint8[H, W, 3] -> the image on this classifier's grid (`grid_image`), kept in the memo of its planes."""
        return compute_once(memo, ("grid image",), lambda: grid_image(image_rgb, self.stride))

    def probability(self, image_rgb: np.ndarray) -> np.ndarray:
        """uint8[H, W, 3] -> float32[ceil(H / stride), ceil(W / stride)] probability of the product."""
        return self.probability_of(self.bank(image_rgb))

    def probability_of(self, bank: np.ndarray) -> np.ndarray:
        """float32[N_PLANES, h, w] a filter bank (see `bank`) -> float32[h, w] probability of the product."""
        planes, h, w = bank.shape
        samples = bank.reshape(planes, -1).T
        if self.planes != ALL_PLANES:
            samples = samples[:, self.planes]
        if len(self.forest.classes_) < 2:  # learnt from one class only (a support with nothing around it)
            return np.full((h, w), float(self.forest.classes_[0]), np.float32)
        return self.forest.predict_proba(samples)[:, 1].astype(np.float32).reshape(h, w)


def object_contrast(image_rgb: np.ndarray, mask: np.ndarray) -> float:
    """uint8[H, W, 3] and bool[H, W] an object -> the distance between the median colours (opponent planes) of its
    inside (eroded by 2 px) and of a ring around it (from 2 px out to half its equivalent radius)."""
    mask8 = np.asarray(mask, np.uint8)
    reach = max(2, int(np.sqrt(mask8.sum() / np.pi) * 0.5))
    ring = ((cv2.dilate(mask8, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1,) * 2)) > 0)
            & ~(cv2.dilate(mask8, np.ones((5, 5), np.uint8)) > 0))
    core = cv2.erode(mask8, np.ones((5, 5), np.uint8)) > 0
    if not core.any():
        core = mask8 > 0
    if not ring.any():
        return float("inf")
    colours = np.stack(opponent_planes(image_rgb), axis=-1)
    return float(np.linalg.norm(np.median(colours[core], axis=0) - np.median(colours[ring], axis=0)))


def fit_classifier(
    image_rgb: np.ndarray, mask: np.ndarray, stride: int, scales: tuple[float, float, float], seed: int = 0
) -> PixelClassifier:
    """The support image uint8[H, W, 3] and its object's mask bool[H, W] -> the fitted classifier (reading
    LOOK_PLANES only for a faint support, see _FAINT)."""
    rng = np.random.default_rng(seed)
    small = grid_image(image_rgb, stride)
    h, w = small.shape[:2]
    mask_grid = cv2.resize(mask.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA) >= 0.5
    if not mask_grid.any():
        mask_grid = cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
    radius = float(np.sqrt(mask_grid.sum() / np.pi))
    features, labels = [], []
    material = materials(filter_bank(small, scales).reshape(-1, mask_grid.size).T, seed)
    positives, negatives = training_cells(mask_grid, radius, rng, material)
    for brightness, tint in _AUGMENTATIONS:
        bank = filter_bank(relit(small, brightness, tint), scales)
        flat = bank.reshape(bank.shape[0], -1)
        features += [flat[:, positives].T, flat[:, negatives].T]
        labels += [np.ones(len(positives), np.int8), np.zeros(len(negatives), np.int8)]
    samples, classes = np.concatenate(features), np.concatenate(labels)
    planes = LOOK_PLANES if object_contrast(image_rgb, mask) < _FAINT else ALL_PLANES
    return PixelClassifier(_forest(samples[:, planes], classes, seed), stride, scales, samples, classes, planes)


def _forest(samples: np.ndarray, classes: np.ndarray, seed: int) -> "ExtraTreesClassifier":
    # Imported here: scikit-learn's import costs about a second of every command's start-up, round supports and
    # SAM engines need none of it.
    from sklearn.ensemble import ExtraTreesClassifier

    forest = ExtraTreesClassifier(class_weight="balanced", random_state=seed, n_jobs=1, **_FOREST)
    forest.fit(samples, classes)
    return forest


def refit(classifier: PixelClassifier, samples: np.ndarray, classes: np.ndarray, seed: int = 0) -> PixelClassifier:
    """The classifier fitted again on its own cells and these (float32[M, N_PLANES], int8[M] classes)."""
    if classifier.samples is None or classifier.classes is None:
        raise ValueError("the classifier keeps no training cells to refit with")
    all_samples = np.concatenate([classifier.samples, samples.astype(np.float32)])
    all_classes = np.concatenate([classifier.classes, classes.astype(np.int8)])
    planes = classifier.planes
    return PixelClassifier(_forest(all_samples[:, planes], all_classes, seed), classifier.stride, classifier.scales,
                           classifier.samples, classifier.classes, planes)
