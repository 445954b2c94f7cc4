"""CounTR as the pipeline's density map generator (the paper's DMG2).

Per frame: resize to model scale, cut the exemplar crops, split into windows (3 x 3 tiles when every exemplar is
tiny), run every window with every exemplar group in batched backend calls, average the groups, stitch, and bring
the density back to the frame with its sum preserved: the frame density sums to the count, sum(raw) / 60.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from engines.errors import UserError

from engines.countr import preprocess as pre
from engines.countr.backends import CountrBackend, run_batched
from engines.countr.windows import WindowLayout, assemble, density_to_frame, make_windows
from engines.interfaces import DensityOutput, ImageEmbedding

log = logging.getLogger(__name__)


@dataclass
class ModelScaleDensity:
    """CounTR's stitched density before it is mapped to the frame.

    Attributes:
        density: float32[384 * tiles, W * tiles] raw model output (sum / 60 is the count; may be negative).
        layout: the windows it was stitched from.
        groups: how many exemplar groups were averaged.
    """

    density: np.ndarray
    layout: WindowLayout
    groups: int


class CountrDMG:
    """`engines.interfaces.DensityMapGenerator` on a CounTR backend. Not thread-safe (like its backends).

    Exemplar boxes: clipped to the frame; empty or non-finite ones dropped. 1-3 boxes are one exemplar set;
    4 or more are sets of three filled cyclically (4 -> {0, 1, 2}, {3, 0, 1}) whose densities are averaged, run
    in the same backend call as extra batch rows (the image encoder runs once per window). With no usable box
    left, the density is empty and the count 0 (logged).
    """

    def __init__(self, backend: CountrBackend, name: str = "countr"):
        self.backend = backend
        self.name = name

    def model_density(self, image_rgb: np.ndarray, exemplar_boxes: np.ndarray) -> ModelScaleDensity | None:
        """uint8[H, W, 3], float[M, 4] frame boxes -> the stitched model-scale density, or None without exemplars."""
        h, w = image_rgb.shape[:2]
        boxes = pre.clip_boxes(exemplar_boxes, (h, w))
        if len(boxes) == 0:
            return None
        tile_width = pre.model_width((h, w))
        boxes = pre.scale_boxes(boxes, tile_width / w, pre.INPUT_SIZE / h)
        tiles = pre.TILES if pre.all_tiny(boxes) else 1
        if tiles > 1:
            log.debug("all %d exemplars under %d px: counting on %dx%d tiles", len(boxes), pre.TINY_EXEMPLAR_PX,
                      tiles, tiles)
        scaled = pre.resize_rgb(image_rgb, (pre.INPUT_SIZE * tiles, tile_width * tiles))
        groups = pre.exemplar_groups(pre.crop_exemplars(scaled, boxes * np.float32(tiles)))
        windows, layout = make_windows(pre.to_chw_float(scaled), tiles, tile_width)
        raw = run_batched(self.backend, windows, groups)
        return ModelScaleDensity(assemble(raw, layout), layout, len(groups))

    def density(
        self, image_rgb: np.ndarray, embedding: ImageEmbedding | None, exemplar_boxes: np.ndarray
    ) -> DensityOutput:
        """uint8[H, W, 3] frame, (ignored) embedding, float[M, 4] boxes -> density float32[H, W] summing to count.

        CounTR has its own image encoder, so the pipeline's embedding is not used.
        """
        image_rgb = _check_image(image_rgb)
        h, w = image_rgb.shape[:2]
        result = self.model_density(image_rgb, exemplar_boxes)
        if result is None:
            log.warning("CounTR: no exemplar box inside the %dx%d frame; density left empty", w, h)
            return DensityOutput(np.zeros((h, w), np.float32), 0.0)
        count = max(float(result.density.sum(dtype=np.float64)) / pre.DENSITY_SCALE, 0.0)
        density = density_to_frame(result.density, (h, w), count)
        # A positive raw sum can come with no positive pixel left after resizing; the pair stays consistent.
        return DensityOutput(density, count if density.any() else 0.0)


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise UserError(f"CounTR needs an RGB image of shape [H, W, 3], got {list(image.shape)}")
    if image.dtype != np.uint8:
        raise UserError(f"CounTR needs a uint8 image, got {image.dtype}")
    return image
