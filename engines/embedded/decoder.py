"""Point-prompt decoder for the CPU: each prompt's object is the star-convex outline found along rays cast
from it (see `rays`), scored in [0, 1] by how clear and regular the outline is.

It answers with one label map on the working grid (`DecoderOutput.labels`), not N logit grids: touching
objects are split between their prompts. Prompts that land on one object share its region: the first of
them owns it in the label map and the others get an empty mask (the pipeline drops empty masks).
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from engines.embedded.features import RED_GREEN, YELLOW_BLUE, Descriptors, row_medians
from engines.embedded.payload import SUPPORT_CHROMA
from engines.embedded.rays import SMOOTH, frame_gradients, group_prompts, outline_scores, outlines, rasterise
from engines.interfaces import DecoderOutput, ImageEmbedding, PromptGuidance
from engines.errors import EngineError

log = logging.getLogger(__name__)

# Cosine similarity to the support prototype below which a guided prompt is on another kind of object
# (targets sit at 0.6-1.0, the belt and other-coloured objects at 0.1-0.3 with the embedded features).
_MIN_GUIDED_SIMILARITY = 0.4
# The frame's most support-like cells: within this fraction of the similarity's range from its top.
_SUPPORT_LIKE = 0.1
# Objects larger than this fraction of the grid's longer side are not looked for.
_MAX_RADIUS = 0.2


class EmbeddedMaskDecoder:
    def decode_points(
        self,
        embedding: ImageEmbedding,
        points_xy: np.ndarray,
        guidance: PromptGuidance | None = None,
    ) -> DecoderOutput:
        """points_xy float[N, 2] frame pixels -> labels int32[h, w] (i + 1 for prompt i), scores float32[N, 1]."""
        desc = embedding.payload
        if not isinstance(desc, Descriptors):
            raise EngineError("the embedded mask decoder needs the embedded encoder's embedding")
        points = np.asarray(points_xy, np.float64).reshape(-1, 2)
        gh, gw = desc.grid_hw
        if len(points) == 0:
            empty = np.zeros((gh, gw), np.int32)
            return DecoderOutput(None, np.zeros((0, 1), np.float32), (float(gh), float(gw)), empty)
        cells = desc.to_grid(points)
        # The support's size (from the guidance) bounds the scale search; without it, the prompts' own.
        hint = None
        if guidance is not None and guidance.object_radius:
            hint = float(guidance.object_radius) / desc.stride
        shapes = outlines(
            desc.smoothed(SMOOTH), cells, _MAX_RADIUS * max(gh, gw), radius_hint=hint, gradients=frame_gradients(desc)
        )
        groups = group_prompts(cells, shapes.radius)
        groups_map = rasterise((gh, gw), cells, shapes, groups)
        scores = outline_scores(shapes, groups)
        radius = float(row_medians(shapes.radius))
        liked = None
        if guidance is not None and guidance.targeted:
            liked = liked_groups(groups, guidance_at(guidance, cells, desc.grid_hw))
            # The support's colour on this frame, made again at each of its guided calls (under a millisecond),
            # for its density map generator's next calls (kept in this product's view of the frame).
            desc.remember(SUPPORT_CHROMA, support_chroma(desc, guidance.similarity))
        labels = prompt_labels(groups_map, groups, liked)
        log.debug("decoder: %d prompts, %d objects, radius %.1f cells", len(points), int(groups.max()) + 1, radius)
        return DecoderOutput(None, scores[:, None], (float(gh), float(gw)), labels)


def support_chroma(desc: Descriptors, similarity: np.ndarray) -> np.ndarray:
    """float64[2]: the median chroma of the frame's most support-like cells (similarity within a tenth of
    its range from the top): the product's colour on this frame, for the density map generator."""
    gh, gw = desc.grid_hw
    sim = cv2.resize(np.asarray(similarity, np.float32), (gw, gh), interpolation=cv2.INTER_LINEAR)
    top, middle = float(sim.max()), float(np.median(sim))
    alike = sim >= top - _SUPPORT_LIKE * (top - middle)
    return np.array([np.median(desc.data[RED_GREEN][alike]), np.median(desc.data[YELLOW_BLUE][alike])])


def guidance_at(guidance: PromptGuidance, cells: np.ndarray, grid_hw: tuple[int, int]) -> np.ndarray:
    """float[N]: the guidance similarity at each prompt (grid cells of the working grid)."""
    sim = guidance.similarity
    sh, sw = sim.shape
    gh, gw = grid_hw
    x = np.clip(np.rint((cells[:, 0] + 0.5) * sw / gw - 0.5).astype(int), 0, sw - 1)
    y = np.clip(np.rint((cells[:, 1] + 0.5) * sh / gh - 0.5).astype(int), 0, sh - 1)
    return sim[y, x]


def liked_groups(groups: np.ndarray, similarity: np.ndarray) -> np.ndarray:
    """bool[G]: the groups with a prompt that looks like the support (target-guided decoding, like PerSAM's
    target-semantic prompting, answers a prompt on another kind of object with no mask)."""
    liked = np.zeros(int(groups.max()) + 1, bool)
    np.logical_or.at(liked, groups, similarity >= _MIN_GUIDED_SIMILARITY)
    return liked


def prompt_labels(groups_map: np.ndarray, groups: np.ndarray, liked: np.ndarray | None = None) -> np.ndarray:
    """int32[h, w] group labels (g + 1) -> prompt labels (i + 1, i = the first prompt of group g); the regions
    of groups not `liked` (bool[G], where given) empty. One lookup over the map."""
    n_groups = int(groups.max()) + 1
    lut = np.zeros(n_groups + 1, np.int32)
    present, first = np.unique(groups, return_index=True)  # groups are numbered 0..G-1 in order of first prompt
    lut[present + 1] = first + 1
    if liked is not None:
        lut[1:][~liked] = 0
    return lut[groups_map]
