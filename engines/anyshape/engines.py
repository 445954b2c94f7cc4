"""The any-shape engine set behind the pipeline's interfaces: an encoder that learns the support (a pixel
classifier and the object's shape), a density map generator with one unit of density per object found, and a
decoder that answers each prompt with the object's own region.

How the parts share a frame's work: `AnyShapeSupport.similarity(embedding)` (called by the pipeline once per
frame, before the density map generator and the decoder) computes the probability map and records itself in
the frame's `FrameWork`; the density map generator and the decoder of the same engine set read the regions
from there, found once per frame and support, so the pipeline's passes (initial exemplars, first pass,
feedback) cost one analysis.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import cv2
import numpy as np
from scipy import ndimage

from engines.anyshape.adapt import belt_samples, with_belt
from engines.anyshape.classifier import PixelClassifier, fit_classifier, grid_image
from engines.anyshape.filters import FINE_GRADIENT, opponent_planes
from engines.anyshape.instances import EdgeCues, Regions, find_regions, product_cells
from engines.anyshape.outline import snap_to_edges
from engines.anyshape.standout import printed, stands_out
from engines.anyshape.templates import Silhouettes, silhouettes
from engines.anyshape.shape import ShapeStats, inner_radius, shape_stats
from engines.errors import EngineError
from engines.frame_cache import FrameCache
from engines.interfaces import DecoderOutput, DensityOutput, ImageEmbedding, PromptGuidance

log = logging.getLogger(__name__)

# The prototype's grid: coarse, since the prototype only names the support in caches (see AnyShapeEncoder).
_PROTOTYPE_STRIDE = 8
# The classifier's grid: about this many cells across the support object's inner radius (measured on the
# category development set: 4 keeps 6-14 px items and thin rods whole, coarser grids lose them; finer costs
# time in proportion to the cells), never coarser than 3 pixels a cell.
_CELLS_PER_INNER_RADIUS = 4.0
_MAX_STRIDE = 3
# Density: each object's unit spread over a Gaussian of this share of its inner radius (frame pixels), so the
# IDM's threshold and erosion keep every object's peak apart from its neighbours'.
_DENSITY_SIGMA = 0.3


@dataclass
class FrameWork:
    """A frame's image and what the any-shape engines found in it, per support (the embedding's payload)."""

    image: np.ndarray  # uint8[H, W, 3] RGB
    banks: dict = field(default_factory=dict)  # support key -> float32[N_PLANES, h, w] the frame's filter bank
    probability: dict = field(default_factory=dict)  # support key -> float32[h, w]
    regions: dict = field(default_factory=dict)  # support key -> Regions
    outlines: dict = field(default_factory=dict)  # support key -> int32[H, W] the regions at frame resolution
    active: "AnyShapeSupport | None" = None  # the support the pipeline matched this frame against last
    # grid step (pixels) -> the frame's filter planes on that grid, shared by every support of that step (the
    # planes of equal scales are computed once a frame, whatever the number of products, also where the products
    # run on threads of their own: FrameCache, filters.filter_bank)
    grids: dict = field(default_factory=dict)

    def view(self) -> "FrameWork":
        """This frame's work as another product's pipeline starts on it: every cache shared (they are keyed by
        support), no support matched yet (`active`: the previous product's must not route this one's calls)."""
        return replace(self, active=None)

    def regions_for(self, support: "AnyShapeSupport") -> Regions:
        key = id(support)
        if key not in self.regions:
            probability = support.probability(self)
            edges = self.banks[key][FINE_GRADIENT]
            near_edge = cv2.dilate(edges, np.ones((3, 3), np.uint8))
            # Dimmer or flatter light than the support's lowers every edge alike: the levels follow the frame's.
            contrast = float(np.clip(np.percentile(edges, _CONTRAST_PERCENTILE) / support.contrast, 0.3, 1.0))
            cues = EdgeCues(edges > support.edge_level * contrast,
                            near_edge >= _OUTLINE_SHARE * support.outline_level * contrast)
            regions = find_regions(probability, support.shape, edges=cues, shapes=support.silhouettes,
                                   judge_population=not support.printed)
            belt = None if support.printed else belt_samples(self.banks[key], probability, regions,
                                                              support.shape.inner_radius)
            if belt is not None:
                # A belt the support image never showed: learnt from this frame, and the frame looked at again.
                probability = with_belt(support.classifier, belt).probability_of(self.banks[key])
                regions = find_regions(probability, support.shape, edges=cues, shapes=support.silhouettes)
            self.regions[key] = regions
        return self.regions[key]

    def outlines_for(self, support: "AnyShapeSupport") -> np.ndarray:
        key = id(support)
        if key not in self.outlines:
            self.outlines[key] = snap_to_edges(self.regions_for(support).labels, self.image, support.stride)
        return self.outlines[key]


def _work(embedding: ImageEmbedding) -> FrameWork:
    work = embedding.payload
    if not isinstance(work, FrameWork):
        raise EngineError("the any-shape engines need the any-shape encoder's embedding")
    if work.active is None:
        raise EngineError("the any-shape engines need a support: the pipeline matches the frame against it first")
    return work


@dataclass
class AnyShapeSupport:
    """What the encoder learnt of one support: the pixel classifier and the object's shape on its grid."""

    classifier: PixelClassifier
    shape: ShapeStats
    edge_level: float  # the strongest edges inside the support object: stronger ones part items in a pile
    outline_level: float  # the typical edge along the support object's outline
    contrast: float  # the support image's edge level at _CONTRAST_PERCENTILE: its light's contrast
    silhouettes: Silhouettes  # the object's silhouette on the grid, turned and scaled, for clumps
    printed: bool = False  # told by what stands out from the belt and its outline, not its look (standout)

    @property
    def stride(self) -> int:
        return self.classifier.stride

    def probability(self, work: FrameWork) -> np.ndarray:
        key = id(self)
        if key not in work.probability:
            grid = work.grids.setdefault(self.stride, FrameCache())  # setdefault: one among threads
            work.banks[key] = self.classifier.bank(work.image, grid)
            work.probability[key] = (stands_out(work.banks[key], self.classifier.grid(work.image, grid))
                                     if self.printed else self.classifier.probability_of(work.banks[key]))
        return work.probability[key]

    def similarity(self, embedding: ImageEmbedding) -> np.ndarray:
        """float32[h, w] in [0, 1]: the probability that each cell (stride pixels a side) is the product's."""
        work = embedding.payload
        if not isinstance(work, FrameWork):
            raise EngineError("the any-shape support model needs the any-shape encoder's embedding")
        work.active = self
        return self.probability(work)


def support_stride(mask: np.ndarray) -> int:
    """The classifier's grid step (pixels) for a support mask bool[H, W]: fine for small or thin objects."""
    return int(np.clip(np.floor(inner_radius(mask) / _CELLS_PER_INNER_RADIUS), 1, _MAX_STRIDE))


def support_scales(shape: ShapeStats) -> tuple[float, float, float]:
    """The filter bank's three scales (cells) for an object of this shape on the classifier's grid."""
    inner = max(shape.inner_radius, 1.0)
    return (0.7, max(1.0, 0.35 * inner), max(1.5, 0.7 * inner))


def _as_classified(probability: np.ndarray, grid_mask: np.ndarray, drawn: ShapeStats) -> ShapeStats:
    """The support object's shape as the classifier sees it on the support image (the shape the frames' objects
    will have: rims and highlights judged as in frames), where that is still the drawn object; else as drawn."""
    found, _ = ndimage.label(product_cells(probability))
    overlap = np.bincount(found[grid_mask], minlength=found.max() + 1)
    overlap[0] = 0
    best = int(np.argmax(overlap))
    if best == 0:
        return drawn
    region = found == best
    iou = overlap[best] / float((region | grid_mask).sum())
    return shape_stats(region) if iou >= 0.7 else drawn


# The inner edge level: this percentile of the edge strength inside the support object, away from its outline
# (its print, grain and highlights; an item's own outline against its neighbour is stronger).
_INNER_EDGE_PERCENTILE = 95.0
# A found region's outline must run along edges at least this share of the support outline's median strength
# (measured: items under x0.5 light keep about half their outline contrast).
_OUTLINE_SHARE = 0.4
# An image's contrast: this percentile of its edge strength (the items' outlines and the belt's texture).
_CONTRAST_PERCENTILE = 90.0


def _edge_levels(edges: np.ndarray, grid_mask: np.ndarray) -> tuple[float, float, float]:
    """float32[h, w] the support image's fine gradient on the grid (its bank's FINE_GRADIENT plane), bool[h, w]
    its object -> (the strongest edge level inside it, the median edge level along its outline (each outline
    cell's strongest within one cell), the image's contrast)."""
    mask8 = grid_mask.astype(np.uint8)
    core = cv2.erode(mask8, np.ones((5, 5), np.uint8)) > 0
    if core.sum() < 4:
        core = grid_mask
    outline = cv2.morphologyEx(mask8, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    near_edge = cv2.dilate(edges, np.ones((3, 3), np.uint8))
    contrast = max(float(np.percentile(edges, _CONTRAST_PERCENTILE)), 1e-3)
    return float(np.percentile(edges[core], _INNER_EDGE_PERCENTILE)), float(np.median(near_edge[outline])), contrast


class AnyShapeEncoder:
    """The frame itself is the embedding's payload (the analysis happens per support, see `AnyShapeSupport`);
    `features` is a coarse colour grid, float32[4, H/8, W/8], kept for the pipeline's prototype."""

    def encode(self, image_rgb: np.ndarray) -> ImageEmbedding:
        image_rgb = np.asarray(image_rgb)
        if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
            raise EngineError(
                f"the any-shape encoder needs a uint8 RGB image [H, W, 3], got {image_rgb.dtype} {image_rgb.shape}"
            )
        small = grid_image(image_rgb, _PROTOTYPE_STRIDE)
        planes = opponent_planes(small)
        features = np.stack([*planes, np.full(planes[0].shape, 50.0, np.float32)]).astype(np.float32)
        return ImageEmbedding(features, tuple(image_rgb.shape[:2]), features.shape[1:], payload=FrameWork(image_rgb))

    def learn_support(self, image_rgb: np.ndarray, mask: np.ndarray) -> AnyShapeSupport:
        """uint8[H, W, 3] support image, bool[H, W] its object -> the support model (fitted once per support)."""
        mask = np.asarray(mask, bool)
        stride = support_stride(mask)
        h, w = mask.shape
        grid_mask = cv2.resize(mask.astype(np.float32), (-(-w // stride), -(-h // stride)),
                               interpolation=cv2.INTER_AREA) >= 0.5
        labelled, n = ndimage.label(grid_mask)
        if n > 1:  # the largest part: a mask drawn with a stray speck is still one object
            grid_mask = labelled == 1 + int(np.argmax(np.bincount(labelled.ravel())[1:]))
        shape = shape_stats(grid_mask)
        classifier = fit_classifier(image_rgb, mask, stride, support_scales(shape))
        is_printed = printed(image_rgb, mask)
        bank = classifier.bank(image_rgb)
        if not is_printed:  # a printed product is told by its outline: the drawn one is the shape to find
            shape = _as_classified(classifier.probability_of(bank), grid_mask, shape)
        edge_level, outline_level, contrast = _edge_levels(bank[FINE_GRADIENT], grid_mask)
        log.debug("any-shape support: stride %d, area %.0f cells, elongation %.2f, solidity %.2f, holes %.2f",
                  stride, shape.area, shape.elongation, shape.solidity, shape.hole_fraction)
        return AnyShapeSupport(classifier, shape, edge_level, outline_level, contrast, silhouettes(grid_mask),
                               is_printed)


class AnyShapeDensityMapGenerator:
    """One unit of density per object the support model finds (the exemplar boxes are not needed: the support
    model learnt the product's look and shape once)."""

    def density(self, image_rgb: np.ndarray, embedding: ImageEmbedding, exemplar_boxes: np.ndarray) -> DensityOutput:
        work = _work(embedding)
        support = work.active
        regions = work.regions_for(support)
        h, w = embedding.frame_hw
        impulses = np.zeros((h, w), np.float32)
        stride = support.stride
        if len(regions.points):
            xy = np.clip(np.rint((regions.points + 0.5) * stride - 0.5).astype(int), 0, [w - 1, h - 1])
            np.add.at(impulses, (xy[:, 1], xy[:, 0]), 1.0)
            sigma = max(1.0, _DENSITY_SIGMA * support.shape.inner_radius * stride)
            impulses = cv2.GaussianBlur(impulses, (0, 0), sigma, borderType=cv2.BORDER_CONSTANT)
        return DensityOutput(impulses, float(len(regions.points)))


class AnyShapeMaskDecoder:
    """Each prompt's mask is the found object it lies on (or, within the object's inner radius, the nearest);
    one label map for all prompts, as `DecoderOutput.labels`."""

    def decode_points(
        self, embedding: ImageEmbedding, points_xy: np.ndarray, guidance: PromptGuidance | None = None
    ) -> DecoderOutput:
        work = _work(embedding)
        support = work.active
        regions = work.regions_for(support)
        labels = work.outlines_for(support)
        fh, fw = embedding.frame_hw
        points = np.asarray(points_xy, np.float64).reshape(-1, 2)
        if len(points) == 0:
            return DecoderOutput(None, np.zeros((0, 1), np.float32), (float(fh), float(fw)), np.zeros((fh, fw), np.int32))
        cells = np.clip(np.floor(points).astype(int), 0, [fw - 1, fh - 1])
        region = labels[cells[:, 1], cells[:, 0]]
        missing = region == 0
        if missing.any() and len(regions.scores):
            # Within the object's inner radius of an object: that object (a prompt on its rim, or a ring's hole).
            grid = regions.labels
            stride = support.stride
            grid_cells = np.clip(cells // stride, 0, [grid.shape[1] - 1, grid.shape[0] - 1])
            distance, (iy, ix) = ndimage.distance_transform_edt(grid == 0, return_indices=True)
            gx, gy = grid_cells[:, 0], grid_cells[:, 1]
            near = missing & (distance[gy, gx] <= max(support.shape.inner_radius, 1.0))
            region[near] = grid[iy[gy[near], gx[near]], ix[gy[near], gx[near]]]
        lut = np.zeros(len(regions.scores) + 1, np.int32)
        scores = np.zeros((len(points), 1), np.float32)
        for i, r in enumerate(region.tolist()):
            if r and lut[r] == 0:  # the first prompt on an object owns it; the others get an empty mask
                lut[r] = i + 1
                scores[i, 0] = regions.scores[r - 1]
        return DecoderOutput(None, scores, (float(fh), float(fw)), lut[labels])
