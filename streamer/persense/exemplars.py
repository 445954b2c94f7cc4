"""The pipeline's steps around the decoder: the first exemplars (Eq. 1), the size gate on decoded masks, the
exemplars fed back (Algorithm 1, line 14) and the cap on point prompts. Pure functions of their arrays, the
support and the configuration (streamer.persense.pipeline chains them)."""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np

from engines.interfaces import ImageEmbedding, MaskDecoder, PromptGuidance
from streamer.config import PipelineConfig
from streamer.persense.frames import Support, at_frame_edge, linear_size, similar_size
from streamer.persense.postprocess import instances_from_decoder
from streamer.persense.ppsm import sample_at, top_points
from streamer.types import Instance

log = logging.getLogger("streamer.persense.pipeline")

# Extra initial exemplars need at least this match quality (1: as alike as the support to itself).
_PRIOR_QUALITY = 0.6


def initial_exemplars(
    decoder: MaskDecoder,
    embedding: ImageEmbedding,
    similarity: np.ndarray,
    gate_boxes: np.ndarray | None,
    guidance: PromptGuidance | None,
    support: Support,
    config: PipelineConfig,
) -> np.ndarray:
    """Eq. 1: the positive location prior (in the most confident gate box), decoded; its mask's box -> float32[M, 4].

    With `initial_exemplars` > 1, the next most support-like places (two support objects apart) are
    decoded with it, in the same call: one atypical object at P_max then cannot mislead the DMG alone."""
    if gate_boxes is not None and len(gate_boxes) == 0:
        return np.zeros((0, 4), np.float32)
    best_box = None if gate_boxes is None else gate_boxes[0]
    separation = 2.0 * max(support.object_size)
    priors = top_points(similarity, config.initial_exemplars, separation, best_box)
    if len(priors) > 1:
        # The next most similar places may be other kinds of object where the product is rare in the
        # frame: only those that match the support about as well as its own object join P_max.
        quality = support.calibration.quality(sample_at(similarity, priors))
        priors = priors[np.concatenate([[True], quality[1:] >= _PRIOR_QUALITY])]
    h, w = similarity.shape
    output = decoder.decode_points(embedding, priors, guidance)
    found = {inst.point: inst for inst in instances_from_decoder(output, priors, (h, w), min_area=1)}
    bw, bh = support.object_size

    def exemplar_box(x: float, y: float) -> tuple[float, float, float, float]:
        inst = found.get((x, y))
        if inst is not None and similar_size(inst.bbox, (bw, bh), config.exemplar_size_tolerance):
            return inst.bbox
        # No mask at the prior, or one of another scale than the support's object (a mask that leaked
        # into the background, or collapsed to a speck): the camera sees the product at about the
        # support's scale, so a support-sized box there is a better exemplar than none.
        log.debug("initial exemplar: no mask of the support's scale at %s, using a support-sized box", (x, y))
        return (max(x - bw / 2, 0), max(y - bh / 2, 0), min(x + bw / 2, w), min(y + bh / 2, h))

    # An object cut by the frame's edge is of another size and shape than the product: its mask, or a box
    # guessed there, misleads the DMG (whole frames of the simulator counted 0 from priors at x = 0 or
    # x = 638). The other priors serve; where all lie at the edge, the best of them.
    inside = [(x, y) for x, y in priors.tolist() if not at_frame_edge((x, y), (w, h), bw, bh)]
    boxes = [exemplar_box(x, y) for x, y in (inside or priors[:1].tolist())]
    return np.asarray(boxes, np.float32)


def size_gate(instances: list[Instance], exemplars: np.ndarray, tolerance: float) -> list[Instance]:
    """The instances whose box is at most `tolerance` times the exemplars' (float[M, 4]) linear size: a mask many
    times an exemplar's size leaked into the background or merged a clump, and is no object."""
    if not instances or len(exemplars) == 0:
        return instances
    sides = np.maximum(exemplars[:, 2:] - exemplars[:, :2], 1.0)
    limit = float(np.median(np.sqrt(sides[:, 0] * sides[:, 1]))) * tolerance
    kept = [inst for inst in instances if linear_size(inst.bbox) <= limit]
    if len(kept) < len(instances):
        log.debug("size gate: %d of %d masks larger than %.0f px dropped", len(instances) - len(kept),
                  len(instances), limit)
        kept = [replace(inst, id=k) for k, inst in enumerate(kept)]
    return kept


def feedback_exemplars(instances: list[Instance], previous: np.ndarray, count: int) -> np.ndarray:
    """Algorithm 1, line 14: the top-`count` masks by decoder score become the DMG's exemplars (float32[m, 4]).

    Only masks of about the pass's typical size compete: the DMG takes the object scale from its
    exemplars, and a decoder's most confident masks can be its smallest (a clean part of an object) or
    largest (two touching objects)."""
    if not instances:
        return previous
    sizes = np.array([linear_size(inst.bbox) for inst in instances])
    typical = float(np.median(sizes))
    pool = [inst for inst, size in zip(instances, sizes) if typical / 1.1 <= size <= typical * 1.1]
    if len(pool) < count:
        pool = instances
    top = sorted(pool, key=lambda inst: inst.score, reverse=True)[:count]
    return np.asarray([inst.bbox for inst in top], np.float32)


def limit_prompts(points: np.ndarray, similarity: np.ndarray, max_prompts: int) -> np.ndarray:
    """At most `max_prompts` of the points float[P, 2]: the most similar ones, in their order."""
    if len(points) <= max_prompts:
        return points
    order = np.argsort(-sample_at(similarity, points), kind="stable")[:max_prompts]
    log.warning("%d point prompts exceed max_prompts=%d; keeping the most similar", len(points), len(order))
    return points[np.sort(order)]
