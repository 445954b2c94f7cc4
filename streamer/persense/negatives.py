""""Not this": examples of what a product is not, and the objects that look more like them than like the product.

Engine-agnostic: every encoder's embedding has a feature grid (ImageEmbedding.features), and a prototype is the
mean of those features inside an example's mask (streamer.persense.similarity.support_prototype), for the product's
support and for each negative example alike. An object found in a frame is described the same way, by the mean
of the features under its mask; it is not counted for the product when that description is nearer (cosine) to a
negative example's prototype than to the product's, both as this frame shows them (frame_prototypes): each
prototype is moved to the mean of the frame's objects that surely match it. One example is one look of its kind:
where the product's example and the negative's are near (cosine 0.59-0.76 on the products mix's seeds 1, 3, 4),
the examples' own prototypes dropped a tenth to a fifth of the products too (seed 4: 100 of 938).

Measured on the simulator's products mix (docs/products.md), the object's mean feature rather than the median of
its pixels' cosines: a rounded product's darker rim is, pixel by pixel, like a darker look-alike, while the mean
(a histogram of the object, as the prototype is one of its example) is not. Over 20 frames, with the examples of
one stretch of belt: look-alikes dropped 229 of 229 (median of pixels: 212), products dropped 0 of 467 (1).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, replace

import cv2
import numpy as np

from engines.interfaces import ImageEmbedding
from streamer.errors import UserError
from streamer.persense.frames import Support
from streamer.persense.similarity import support_prototype
from streamer.persense.support_view import bounded_support
from streamer.persense.similarity import mask_coverage
from streamer.types import Instance

log = logging.getLogger("streamer.persense.pipeline")

MAX_NEGATIVES = 16  # per product: each costs one similarity map per frame that has objects
# An object that matches the product's prototype or a negative's better than every other by this margin (cosine)
# shows how this frame looks that kind (frame_prototypes). Measured on the products mix's development seeds 0, 2,
# 3, 4 (streamer.products_eval, 40 frames; seeds 1, 5, 6 held out), biscuits dropped / candies kept over the four
# seeds (about 3750 biscuits and 1690 candies found as biscuits): the examples' own prototypes 100/8; margin 0:
# 4/1, 0.02: 3/0, 0.05: 2/3, 0.1: 2/8, 0.2: 2/9, 0.3: 6/18. A margin, so that "surely" means something, in the
# flat stretch.
SURE_MARGIN = 0.05


@dataclass(frozen=True)
class Negative:
    """One "not this" example, reduced to what every frame needs."""

    prototype: np.ndarray  # float32[C], L2-normalised, on the product's engines' features
    negative_id: str  # content hash of the example's image and mask (names it in status and results)


def negative_id_for(image_rgb: np.ndarray, mask: np.ndarray) -> str:
    digest = hashlib.sha256(b"negative")
    digest.update(memoryview(np.ascontiguousarray(image_rgb)).cast("B"))
    digest.update(memoryview(np.packbits(mask)).cast("B"))
    digest.update(str(image_rgb.shape).encode())
    return digest.hexdigest()[:16]


def instance_features(embedding: ImageEmbedding, instances: list[Instance]) -> np.ndarray:
    """float32[N, C]: each instance's mean feature over its mask, L2-normalised (zeros where it covers no cell): the
    object described as a prototype describes its example.

    Each mask is reduced to the feature grid by area (a cell weighs the share of it the mask covers) and placed at
    its box's cell: within half a cell of exact, which a mean over the object does not feel."""
    vh, vw = embedding.valid_hw
    features = embedding.features[:, :vh, :vw]
    fh, fw = embedding.frame_hw
    sx, sy = vw / fw, vh / fh
    out = np.zeros((len(instances), features.shape[0]), np.float32)
    for k, inst in enumerate(instances):
        if inst.mask.size == 0:
            continue
        x0, y0, x1, y1 = inst.bbox
        gx0, gy0 = min(int(round(x0 * sx)), vw - 1), min(int(round(y0 * sy)), vh - 1)
        gw = min(max(int(round((x1 - x0) * sx)), 1), vw - gx0)
        gh = min(max(int(round((y1 - y0) * sy)), 1), vh - gy0)
        coverage = cv2.resize(inst.mask.astype(np.float32), (gw, gh), interpolation=cv2.INTER_AREA)
        mean = np.einsum("chw,hw->c", features[:, gy0:gy0 + gh, gx0:gx0 + gw], coverage)
        norm = float(np.linalg.norm(mean))
        if norm > 1e-12:
            out[k] = mean / norm
    return out


def prototype_matches(embedding: ImageEmbedding, instances: list[Instance], prototypes: np.ndarray) -> np.ndarray:
    """float64[N, K]: the cosine similarity of each instance's mean feature to each prototype float32[K, C]."""
    if not instances:
        return np.zeros((0, len(prototypes)))
    return (instance_features(embedding, instances) @ np.asarray(prototypes, np.float32).T).astype(np.float64)


def matched_elsewhere(matches: np.ndarray) -> np.ndarray:
    """bool[N]: for matches float[N, 1 + K] (column 0 the product's own prototype, then K others), which objects
    match one of the others better than their own; none where K == 0."""
    if matches.shape[1] < 2:
        return np.zeros(len(matches), bool)
    return matches[:, 1:].max(axis=1) > matches[:, 0]


def frame_prototypes(features: np.ndarray, prototypes: np.ndarray, margin: float) -> np.ndarray:
    """The prototypes as this frame shows them: float32[N, C] the frame's objects' mean features (instance_features)
    and float32[K, C] prototypes -> float32[K, C], each prototype replaced by the (L2-normalised) mean feature of
    the objects that surely match it (better than every other prototype by `margin`, cosine); a prototype that no
    object surely matches stays as it is.

    One example of a kind is one look of it; the frame's objects show the look this frame gives the kind (its
    light, its other items): an object in between is then judged against those."""
    if len(features) == 0 or len(prototypes) < 2:
        return prototypes
    matches = features @ np.asarray(prototypes, np.float32).T
    best = np.argmax(matches, axis=1)
    ordered = np.sort(matches, axis=1)
    sure = ordered[:, -1] - ordered[:, -2] > margin
    moved = np.array(prototypes, np.float32, copy=True)
    for k in range(len(prototypes)):
        members = sure & (best == k)
        if members.any():
            mean = features[members].mean(axis=0)
            norm = float(np.linalg.norm(mean))
            if norm > 1e-12:
                moved[k] = mean / norm
    return moved


def object_cells(embedding: ImageEmbedding, mask: np.ndarray) -> np.ndarray:
    """float32[n, C]: the feature cells inside an example's mask (bool[H, W]), each L2-normalised: the example
    object as the negative check sees it (the cells its prototype averages)."""
    vh, vw = embedding.valid_hw
    features = embedding.features[:, :vh, :vw]
    coverage = mask_coverage(mask, (vw, vh))
    inside = coverage >= 0.5
    if not inside.any():
        inside = coverage >= coverage.max() * 0.5
    cells = features[:, inside].T.astype(np.float32)
    norms = np.linalg.norm(cells, axis=1, keepdims=True)
    return cells / np.maximum(norms, 1e-12)


def check_negative(prototype: np.ndarray, negative: np.ndarray, own_cells: np.ndarray | None) -> None:
    """UserError where a negative example (its prototype float32[C]) would silence the product itself: it is the
    product's own example (the same prototype), or the product's example object (its cells float32[n, C], where
    known) matches it at least as well as the product's prototype."""
    if float(np.dot(prototype, negative)) >= 0.999:
        raise UserError("this negative example is the product's own example (the same look): it would silence "
                        "the product; pick an object of another kind")
    if own_cells is not None and len(own_cells):
        own, other = float(np.median(own_cells @ prototype)), float(np.median(own_cells @ negative))
        if other >= own:
            raise UserError(f"this negative example looks more like the product than the product's own example "
                            f"does (match {other:.2f} against {own:.2f}): it would silence the product; pick an "
                            "object of another kind")


class NegativeExamples:
    """PerSense's negative examples (a mixin: needs its support, encode, and `negatives`, a tuple of Negative)."""

    def add_negative(self, image_rgb: np.ndarray, mask: np.ndarray) -> Negative:
        """Add an example of what the product is not (uint8[H, W, 3] RGB, bool[H, W]): objects that match it
        better than the support's prototype are no longer counted (streamer.persense.negatives). UserError for an
        example that would silence the product itself, or one beyond MAX_NEGATIVES; nothing changes then."""
        if self.support is None:
            raise UserError("no support set: a negative example says what the product is not; set the support first")
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != image_rgb.shape[:2] or not mask.any():
            raise UserError("a negative example needs a non-empty mask of its image's size")
        negative_id = negative_id_for(image_rgb, mask)
        known = next((n for n in self.negatives if n.negative_id == negative_id), None)
        if known is not None:
            return known
        if len(self.negatives) >= MAX_NEGATIVES:
            raise UserError(f"this product has {MAX_NEGATIVES} negative examples, the most it takes: clear them "
                            "first")
        learn_image, learn_mask = bounded_support(image_rgb, mask)
        prototype = support_prototype(self.encode(learn_image).embedding, learn_mask)
        check_negative(self.support.prototype, prototype, self.support.object_cells)
        negative = Negative(prototype, negative_id)
        self.negatives = (*self.negatives, negative)
        return negative

    def clear_negatives(self) -> int:
        """Forget every negative example -> how many there were."""
        count, self.negatives = len(self.negatives), ()
        return count

    def _keep_negatives_apart(self, support: Support) -> None:
        """A new support keeps the product's negatives, except those it looks like itself (they would silence it)."""
        kept = []
        for negative in self.negatives:
            try:
                check_negative(support.prototype, negative.prototype, support.object_cells)
                kept.append(negative)
            except UserError:
                log.warning("negative example %s dropped: the new support looks like it", negative.negative_id)
        self.negatives = tuple(kept)

    def _without_negatives(self, embedding: ImageEmbedding, instances: list[Instance]) -> tuple[list[Instance], int]:
        """The instances that match the support's prototype at least as well as every negative's -> (them, how
        many were dropped)."""
        if not self.negatives or not instances:
            return instances, 0
        prototypes = np.stack([self.support.prototype, *(n.prototype for n in self.negatives)])
        features = instance_features(embedding, instances)
        in_frame = frame_prototypes(features, prototypes, SURE_MARGIN)
        dropped = matched_elsewhere((features @ in_frame.T).astype(np.float64))
        if not dropped.any():
            return instances, 0
        kept = [replace(inst, id=k) for k, inst in enumerate(i for i, d in zip(instances, dropped) if not d)]
        return kept, int(dropped.sum())
