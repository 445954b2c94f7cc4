"""The default CPU engine set: each support goes to the engines made for its shape.

Round and blob-like products (coins, nuclei, pills, biscuits) go to the outline engines (`engines.embedded`:
closed round rims, radial profiles, star-convex masks), exact for them and measured on the real-image
development sets; every other shape (rods, brackets, rings, tiles, stars) goes to the any-shape engines (a pixel
classifier learnt from the support, watershed, shape agreement), whose masks follow any outline.

The frame is encoded once for both: the outline engines' descriptors and the frame itself travel in one
`RoutedFrame`; the density map generator and the decoder take the route of the support the pipeline matched the
frame against (`FrameWork.active`: an any-shape support, or none for the prototype's route).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from engines.anyshape.engines import (
    AnyShapeDensityMapGenerator,
    AnyShapeEncoder,
    AnyShapeMaskDecoder,
    AnyShapeSupport,
    FrameWork,
)
from engines.anyshape.follow import follow_outline, label_map_at
from engines.anyshape.shape import ellipse_fit, shape_stats
from engines.anyshape.standout import printed
from engines.anyshape.verify import ShapeVerdict, SupportShape, frame_verdict, support_shape
from engines.embedded.decoder import EmbeddedMaskDecoder
from engines.embedded.dmg import EmbeddedDensityMapGenerator
from engines.embedded.encoder import EmbeddedImageEncoder
from engines.embedded.features import Descriptors
from engines.errors import EngineError
from engines.interfaces import DecoderOutput, DensityOutput, ImageEmbedding, PromptGuidance

# Supports the outline engines take (their star-convex outlines and radial profiles are exact there, and they
# were measured on both real-image development sets): small blobs, with an inner radius up to 10 px and up to
# 2.2:1 (nuclei, galaxies, lentils, pellets: the any-shape engines' grid is too coarse for their outlines), and
# disks and ellipses up to 1.6:1 (ellipse fit 0.93: coins measure 0.94-0.98, squares and tiles 0.84-0.86, a
# hexagon 0.92); both solid (0.85) and without holes.
_BLOB_INNER_RADIUS = 10.0
_BLOB_ELONGATION = 2.2
_ELLIPSE_ELONGATION = 1.6
_ELLIPSE_FIT = 0.93
_SOLIDITY = 0.85
_HOLES = 0.02


def _picked(image: np.ndarray, output: DecoderOutput, point_xy: np.ndarray) -> DecoderOutput:
    """The outline engines' answer to a pick (one prompt, label 1), its mask grown or cut to the item's own
    outline (engines.anyshape.follow), as a label map at the frame's resolution."""
    frame_hw = image.shape[:2]
    blob = label_map_at(output.labels, output.valid_hw, frame_hw) == 1
    if not blob.any():
        return output
    item = follow_outline(image, blob, (float(point_xy[0]), float(point_xy[1])))
    return DecoderOutput(None, output.scores, (float(frame_hw[0]), float(frame_hw[1])), item.astype(np.int32))


def is_round(mask: np.ndarray) -> bool:
    """Whether a support object (bool[H, W] mask in frame pixels) goes to the outline engines."""
    shape = shape_stats(mask)
    if shape.solidity < _SOLIDITY or shape.hole_fraction > _HOLES:
        return False
    if shape.inner_radius <= _BLOB_INNER_RADIUS and shape.elongation <= _BLOB_ELONGATION:
        return True
    return shape.elongation <= _ELLIPSE_ELONGATION and ellipse_fit(mask) >= _ELLIPSE_FIT


@dataclass
class RoutedFrame(FrameWork):
    """A frame's work for both routes: the outline engines' descriptors beside the any-shape engines' state, and
    the outline route's verdicts on the frame's shapes, per support, once made (see engines.anyshape.verify)."""

    descriptors: Descriptors | None = None
    verdicts: dict[int, ShapeVerdict] = field(default_factory=dict)  # id(support object mask) -> its verdict

    def view(self) -> "RoutedFrame":
        """As FrameWork.view, the outline engines' descriptors too: their maps shared, what one support's calls
        keep (its colour on the frame, its rim candidates) each product's own."""
        return replace(self, active=None,
                       descriptors=None if self.descriptors is None else self.descriptors.view())


def _frame(embedding: ImageEmbedding) -> RoutedFrame:
    frame = embedding.payload
    if not isinstance(frame, RoutedFrame):
        raise EngineError("the embedded engines need their own encoder's embedding")
    return frame


def _outline_embedding(embedding: ImageEmbedding, frame: RoutedFrame) -> ImageEmbedding:
    return replace(embedding, payload=frame.descriptors)


class RoutedEncoder:
    """Encodes for both routes (the outline engines' descriptors and features: the prototype's route); learns
    an any-shape support model for supports that are not round, and none (the prototype's route) for round ones."""

    def __init__(self) -> None:
        self._outline = EmbeddedImageEncoder()
        self._anyshape = AnyShapeEncoder()

    def encode(self, image_rgb: np.ndarray) -> ImageEmbedding:
        embedding = self._outline.encode(image_rgb)
        frame = RoutedFrame(np.asarray(image_rgb), descriptors=embedding.payload)
        return replace(embedding, payload=frame)

    def learn_support(self, image_rgb: np.ndarray, mask: np.ndarray) -> AnyShapeSupport | None:
        mask = np.asarray(mask, bool)
        if is_round(mask) and not printed(image_rgb, mask):
            return None
        return self._anyshape.learn_support(image_rgb, mask)


class RoutedDensityMapGenerator:
    def __init__(self) -> None:
        self._outline = EmbeddedDensityMapGenerator()
        self._anyshape = AnyShapeDensityMapGenerator()

    def density(self, image_rgb: np.ndarray, embedding: ImageEmbedding, exemplar_boxes: np.ndarray) -> DensityOutput:
        frame = _frame(embedding)
        if frame.active is None:
            return self._outline.density(image_rgb, _outline_embedding(embedding, frame), exemplar_boxes)
        return self._anyshape.density(image_rgb, embedding, exemplar_boxes)


class RoutedMaskDecoder:
    """follow_picks: a pick's mask (one prompt without a support: a click on the product) follows the item's
    outline (a GrabCut of 0.3-0.9 s on 640 x 480 frames); False keeps the outline engines' star-convex blob.
    Several prompts without a support keep the outline engines' joint answer (touching items parted between
    their prompts)."""

    def __init__(self, follow_picks: bool = True) -> None:
        self.follow_picks = follow_picks
        self._outline = EmbeddedMaskDecoder()
        self._anyshape = AnyShapeMaskDecoder()
        self._support: tuple[np.ndarray, SupportShape] | None = None  # the last support mask and its shape

    def _support_shape(self, object_mask: np.ndarray) -> SupportShape:
        # Read once, replaced whole: products segmenting one frame on threads of their own share this decoder.
        last = self._support
        if last is None or last[0] is not object_mask:
            last = (object_mask, support_shape(object_mask))
            self._support = last
        return last[1]

    def decode_points(
        self, embedding: ImageEmbedding, points_xy: np.ndarray, guidance: PromptGuidance | None = None
    ) -> DecoderOutput:
        frame = _frame(embedding)
        object_mask = None if guidance is None else guidance.object_mask
        if frame.active is not None:
            # The any-shape engines judge each object's shape themselves (engines.anyshape.instances); a printed
            # product, told by its outline alone (engines.anyshape.standout), is judged again on the outlines of
            # the frame's objects at the frame's resolution, the ones nearest the support's size first.
            output = self._anyshape.decode_points(embedding, points_xy, guidance)
            support = frame.active
            if not support.printed or object_mask is None:
                return output
            verdict = self._verdict(frame, object_mask, lambda: _outlines_nearest_first(frame, support))
            return output if verdict is None or verdict.same_shape else _nothing(output)
        output = self._outline.decode_points(_outline_embedding(embedding, frame), points_xy, guidance)
        if guidance is None and output.labels is not None and len(points_xy) == 1 and self.follow_picks:
            return _picked(frame.image, output, np.asarray(points_xy, np.float64).reshape(2))
        if object_mask is None or output.labels is None:
            return output
        # Small blobs' outlines are a few pixels of noise (a validation set's nuclei: circle fill 0.5-0.67 where
        # round): shapes are judged from the routing's blob size up.
        verdict = self._verdict(frame, object_mask, lambda: (output.labels, output.scores[:, 0], output.valid_hw),
                                _BLOB_INNER_RADIUS)
        # The frame's objects have another shape than the support's: none of them is the product.
        return output if verdict is None or verdict.same_shape else _nothing(output)

    def _verdict(self, frame: RoutedFrame, object_mask: np.ndarray, objects: Callable[[], tuple],
                 min_inner_radius: float = 0.0) -> ShapeVerdict | None:
        """The frame's verdict on its objects' shapes for this support (engines.anyshape.verify), made once the
        pipeline prompts enough objects to tell (its first call may prompt few), then kept for the frame.
        objects: -> (int32 label map, float32[N] scores: the highest are measured first, the map's (H, W) in
        frame pixels), asked for only while no verdict is kept."""
        key = id(object_mask)  # one verdict per support: several products may share a frame
        if key not in frame.verdicts:
            labels, scores, valid_hw = objects()
            verdict = frame_verdict(labels, scores, valid_hw, frame.image, self._support_shape(object_mask),
                                    min_inner_radius)
            if verdict is None:
                return None
            frame.verdicts[key] = verdict
        return frame.verdicts[key]


def _outlines_nearest_first(frame: RoutedFrame, support: AnyShapeSupport) -> tuple:
    """A printed product's found objects at the frame's resolution, scored by how near each one's area is to the
    support's (the nearest measured first), for the frame's shape verdict."""
    labels = frame.outlines_for(support)
    areas = np.bincount(labels.ravel(), minlength=int(labels.max()) + 1)[1:] / float(support.stride ** 2)
    nearness = -np.abs(np.log(np.maximum(areas, 1.0) / max(support.shape.area, 1.0)))
    return labels, nearness, frame.image.shape[:2]


def _nothing(output: DecoderOutput) -> DecoderOutput:
    return replace(output, labels=np.zeros_like(output.labels), scores=np.zeros_like(output.scores))
