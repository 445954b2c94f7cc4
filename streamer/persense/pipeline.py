"""PerSense (Algorithm 1) over the engine interfaces: support prototype once, then per frame
similarity -> exemplar -> DMG -> IDM -> PPSM -> batched decoding -> feedback."""

from __future__ import annotations

import logging
import threading
import time

import numpy as np

from engines.interfaces import ClassLabelExtractor, EngineSet, ImageEmbedding, PromptGuidance, SupportLearner
from streamer.config import PipelineConfig
from streamer.errors import UserError
from streamer.gates import Gate, NoGate
from streamer.persense.exemplars import feedback_exemplars, initial_exemplars, limit_prompts, size_gate
from streamer.persense.frames import STAGES, EncodedFrame, FrameInputs, Found, StageTimer, Support, support_id_for
from streamer.persense.idm import idm
from streamer.persense.negatives import Negative, NegativeExamples, object_cells
from streamer.persense.postprocess import instances_from_decoder
from streamer.persense.ppsm import ppsm
from streamer.persense.presence import MatchCalibration, calibrate, frame_quality, instance_similarity
from streamer.persense.relight import support_colour, under_support_light
from streamer.persense.scale_check import frame_scale, scale_mismatch, support_profile
from streamer.persense.support_checks import size_mismatch, support_problems
from streamer.persense.support_view import bounded_support
from streamer.persense.similarity import similarity_grid, support_prototype, to_frame
from streamer.types import Instance, SegmentationResult

# Support, EncodedFrame, STAGES and support_id_for live in streamer.persense.frames; importers take them from here.
__all__ = ["PerSense", "Support", "EncodedFrame", "STAGES", "support_id_for"]

log = logging.getLogger(__name__)


class PerSense(NegativeExamples):
    """The one-shot dense instance segmentation pipeline.

    One frame at a time, except `encode`, which may run on another thread one frame ahead of `segment`: with the
    encoder on a GPU, frame t+1 is encoded while the CPU stages of frame t run, so a frame costs max(encoder,
    rest) instead of their sum. The encoder itself is used by one thread at a time (set_support uses it too).

    Stage names in `SegmentationResult.timings_ms`: encode, similarity, density, prompts, decode, postprocess.
    """

    def __init__(
        self,
        engines: EngineSet,
        config: PipelineConfig | None = None,
        gate: Gate | None = None,
        labeler: ClassLabelExtractor | None = None,
        label: str | None = None,
        encoder_lock: threading.Lock | None = None,
    ):
        """labeler: the paper's class-label extractor, run once per support; label: the object's name given
        instead (it wins over the labeler). A gate that finds what a text names (the grounding detector) needs
        one of them. encoder_lock: shared by the pipelines that share `engines` (streamer.stream.products), so
        that their encoder is used by one thread at a time; None: one of its own."""
        self.engines = engines
        self.config = config or PipelineConfig()
        self.gate = gate or NoGate()
        self.labeler = labeler
        self.fixed_label = label.strip() if label else None
        self.support: Support | None = None
        self.negatives: tuple[Negative, ...] = ()  # "not this" examples of the product (add_negative)
        self._size_warned = False
        self._scale_checked: tuple[float, tuple[int, int]] | None = None  # (monotonic s, frame size) of the last check
        self._encoder_lock = encoder_lock or threading.Lock()

    # -- support set ------------------------------------------------------------------------------------
    def set_support(
        self,
        image_rgb: np.ndarray,
        mask: np.ndarray,
        prototype: np.ndarray | None = None,
        calibration: MatchCalibration | None = None,
        label: str | None = None,
    ) -> Support:
        """Compute (or take cached) prototype and match calibration for the support image and mask; replaces
        the previous support. A cached prototype is used only with its calibration.

        label: the object's name where known (cached with the prototype); else the configured label, else the
        class-label extractor's (Algorithm 1, lines 1-2), else none. A labelled gate is prompted with it."""
        mask = np.asarray(mask, dtype=bool)  # no copy of a mask that is bool already
        if mask.shape != image_rgb.shape[:2]:
            raise UserError(
                f"support mask is {mask.shape[1]}x{mask.shape[0]} but the support image is "
                f"{image_rgb.shape[1]}x{image_rgb.shape[0]}"
            )
        if not mask.any():
            raise UserError("the support mask is empty: mark the example object with non-zero pixels")
        # The engines learn from a bounded view (a 50 MP upload: its object's neighbourhood, scaled down), and
        # the support's checks look at it too (they judge the object and its surroundings).
        learn_image, learn_mask = bounded_support(image_rgb, mask)
        warnings = tuple(support_problems(learn_image, learn_mask))
        for warning in warnings:
            log.warning("support: %s", warning)
        label = self._label_for(image_rgb, mask, label)
        model = None
        if isinstance(self.engines.encoder, SupportLearner):
            with self._encoder_lock:
                model = self.engines.encoder.learn_support(learn_image, learn_mask)
        cells = None
        if prototype is None or calibration is None:
            embedding = self.encode(learn_image).embedding
            prototype = support_prototype(embedding, learn_mask)
            grid = model.similarity(embedding) if model is not None else similarity_grid(embedding, prototype)
            calibration = calibrate(grid, learn_mask)
            cells = object_cells(embedding, learn_mask)
        ys, xs = np.nonzero(mask)
        size = (float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1))
        support_id = support_id_for(image_rgb, mask, self.engines.name)
        support = Support(
            prototype.astype(np.float32), size, support_id, calibration, image_hw=tuple(image_rgb.shape[:2]),
            object_radius=float(np.sqrt(mask.sum() / np.pi)), warnings=warnings, label=label,
            profile=support_profile(image_rgb, mask), model=model,
            object_mask=mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1].copy(), object_cells=cells,
            object_rgb=support_colour(image_rgb, mask),
        )
        self.adopt_support(support)
        return support

    def adopt_support(self, support: Support) -> None:
        """Make a support that set_support made elsewhere (another copy of this pipeline over the same engines: the
        stream's workers, streamer.stream.lanes) this pipeline's, as set_support would have."""
        if support.label is not None and hasattr(self.gate, "set_label"):
            self.gate.set_label(support.label)
        self.support = support
        self._keep_negatives_apart(support)
        self._size_warned = False
        self._scale_checked = None

    def _label_for(self, image_rgb: np.ndarray, mask: np.ndarray, known: str | None) -> str | None:
        """The support object's class label: `known`, the configured one, or the class-label extractor's."""
        label = known or self.fixed_label
        if label is None and self.labeler is not None:
            label = self.labeler.extract(image_rgb, mask).strip()
            if not label:
                answer = getattr(self.labeler, "last_answer", "")
                raise UserError(
                    f"the class-label extractor's answer {answer[:80]!r} names no object: set support.label "
                    "(e.g. potato) in the configuration"
                )
        if label is None and getattr(self.gate, "needs_label", False):
            raise UserError("the grounding gate needs the object's name: set support.label, or engines.cle for "
                            "the class-label extractor")
        return label

    # -- per frame ---------------------------------------------------------------------------------------
    def encode(self, image_rgb: np.ndarray) -> EncodedFrame:
        """The encoder's part of `segment` for one uint8[H, W, 3] RGB frame; safe to call from another thread."""
        start = time.perf_counter()
        with self._encoder_lock:
            embedding = self.engines.encoder.encode(image_rgb)
        return EncodedFrame(embedding, (time.perf_counter() - start) * 1000.0)

    def encode_batch(self, images_rgb: list[np.ndarray]) -> list[EncodedFrame]:
        """`encode` of several frames (of several cameras: their pipelines share the engines), in one encoder call
        where the encoder takes batches (engines.sam.model.SamModel.encode_batch), else one each; each frame's
        encode_ms is its share of the call."""
        start = time.perf_counter()
        with self._encoder_lock:
            batched = getattr(self.engines.encoder, "encode_batch", None)
            embeddings = batched(images_rgb) if batched is not None else [
                self.engines.encoder.encode(image) for image in images_rgb]
        share_ms = (time.perf_counter() - start) * 1000.0 / max(len(images_rgb), 1)
        return [EncodedFrame(embedding, share_ms) for embedding in embeddings]

    def segment(self, image_rgb: np.ndarray, encoded: EncodedFrame | None = None) -> SegmentationResult:
        """Segment every instance of the support's kind in one uint8[H, W, 3] RGB frame.

        encoded: this frame's `encode(image_rgb)`, where it was computed ahead; else it is computed here.
        """
        if self.support is None:
            raise UserError("no support set: call set_support(image, mask) first")
        timer = StageTimer()
        h, w = image_rgb.shape[:2]
        encoded = encoded if encoded is not None else self.encode(image_rgb)
        if tuple(encoded.embedding.frame_hw) != (h, w):
            raise ValueError(f"the embedding is of a {encoded.embedding.frame_hw[1]}x{encoded.embedding.frame_hw[0]} "
                             f"frame, not of this {w}x{h} one")
        timer.ms["encode"] = encoded.encode_ms
        if not self._size_warned:
            self._size_warned = True
            mismatch = size_mismatch(self.support.image_hw, (h, w))
            if mismatch:
                log.warning("%s", mismatch)
        found = self._find(image_rgb, encoded.embedding, timer)
        threshold = self.config.presence_threshold
        if threshold is not None and found.quality < threshold and self.support.object_rgb is not None:
            found = under_support_light(image_rgb, found, self.support.object_rgb,
                                        lambda relit_rgb: self._relit_look(relit_rgb, timer), threshold)
        instances = self._presence(found.instances, found.quality)
        with timer.stage("postprocess"):
            instances, suppressed = self._without_negatives(found.embedding, instances)
        if self._scale_check_due((h, w)):
            self._check_scale(image_rgb, found=bool(instances))
        # Algorithm 2 keeps only points inside a grounded box: with none, the frame counts 0, and says why.
        gate_boxes = found.gate_boxes
        reason = self.gate.why_empty() if gate_boxes is not None and len(gate_boxes) == 0 else ""
        return SegmentationResult(
            width=w, height=h, instances=instances, density_count=found.count, points=found.points,
            timings_ms=timer.ms, match_quality=found.quality, label=self.support.label, reason=reason,
            negatives=len(self.negatives), suppressed_by_negative=suppressed,
        )

    # -- steps ---------------------------------------------------------------------------------------------
    def _find(self, image_rgb: np.ndarray, embedding: ImageEmbedding, timer: StageTimer) -> Found:
        """Similarity, exemplars and the passes over one encoded frame: its objects before the presence gate."""
        cfg = self.config
        h, w = image_rgb.shape[:2]
        with timer.stage("similarity"):
            grid = self._similarity_grid(embedding)
            similarity = to_frame(grid, (h, w))
            gate_boxes = self.gate.boxes(image_rgb)
        # The paper's first pass is target-guided; every pass knows the support's scale.
        support = self.support
        scale_only = PromptGuidance(None, None, support.object_radius, support.object_mask)
        guidance = PromptGuidance(support.prototype, grid, support.object_radius, support.object_mask) \
            if cfg.target_guidance else scale_only

        with timer.stage("decode"):
            exemplars = initial_exemplars(self.engines.decoder, embedding, similarity, gate_boxes, guidance, support,
                                          cfg)

        frame = FrameInputs(image_rgb, embedding, similarity, gate_boxes, guidance, scale_only, timer)
        instances, points, count, quality = self._passes(frame, exemplars)
        if not instances and len(exemplars) > 1:
            # The exemplars together found nothing: one on no object of the product (a place where two objects
            # meet, an object cut by the frame's edge) spoils their common look, and whole frames counted 0
            # (3% of the simulator's). Each alone; the one that finds the most objects answers.
            for box in exemplars:
                retry = self._passes(frame, box[None])
                if len(retry[0]) > len(instances):
                    instances, points, count, quality = retry
            log.debug("exemplars together found nothing; alone, the best found %d", len(instances))
        return Found(instances, points, count, quality, embedding, gate_boxes)

    def _relit_look(self, image_rgb: np.ndarray, timer: StageTimer) -> Found:
        """`_find` on a frame relit to the support's light (streamer.persense.relight), its stages timed with the
        frame's."""
        with timer.stage("encode"):
            embedding = self.encode(image_rgb).embedding
        return self._find(image_rgb, embedding, timer)

    def _similarity_grid(self, embedding: ImageEmbedding) -> np.ndarray:
        """Eq. 1's similarity map on the encoder's grid: the support model's match where the encoder learnt one,
        else the cosine similarity to the prototype."""
        if self.support.model is not None:
            return self.support.model.similarity(embedding)
        return similarity_grid(embedding, self.support.prototype)

    def _passes(self, frame: "FrameInputs", exemplars: np.ndarray) -> tuple[list[Instance], np.ndarray, float, float]:
        """Algorithm 1's passes from these exemplar boxes float[M, 4]: the DMG, IDM, PPSM and decoder, then the
        feedback passes -> (instances, the point prompts, the density count, the match quality) of the pass kept."""
        cfg, timer = self.config, frame.timer
        image_rgb, embedding, similarity, gate_boxes = frame.image, frame.embedding, frame.similarity, frame.gate_boxes
        guidance, scale_only = frame.guidance, frame.scale_only
        h, w = image_rgb.shape[:2]
        # The answer of the last pass that produced masks: a feedback pass that finds nothing must not erase
        # what the first pass found (counts would flicker from frame to frame).
        instances: list[Instance] = []
        points = np.zeros((0, 2), np.float32)
        count, quality = 0.0, 0.0
        for iteration in range(1 + cfg.feedback_iterations):
            if len(exemplars) == 0:
                break
            with timer.stage("density"):
                dmg = self.engines.dmg.density(image_rgb, embedding, exemplars)
            with timer.stage("prompts"):
                candidates = idm(
                    dmg.density, threshold=cfg.idm_threshold, keep_composite_centroid=cfg.idm_keep_composite_centroid
                )
                pass_points = ppsm(candidates, similarity, float(dmg.count), gate_boxes, k=cfg.ppsm_k)
                pass_points = limit_prompts(pass_points, similarity, cfg.max_prompts)
            pass_instances: list[Instance] = []
            pass_quality = 0.0
            if len(pass_points):
                with timer.stage("decode"):
                    # The paper's first pass uses target guidance; the feedback pass decodes with plain prompts.
                    output = self.engines.decoder.decode_points(
                        embedding, pass_points, guidance if iteration == 0 else scale_only
                    )
                with timer.stage("postprocess"):
                    pass_instances = instances_from_decoder(
                        output, pass_points, (h, w), cfg.duplicate_iou, cfg.min_score, cfg.min_mask_area
                    )
                    pass_instances = size_gate(pass_instances, exemplars, cfg.mask_size_tolerance)
                    pass_quality = self._match_quality(pass_instances, similarity)
            # A feedback pass replaces the answer when it finds at least as many objects, matching the support
            # about as well: exemplars fed back from atypical masks (a few of the largest or smallest objects,
            # or of other things) find fewer, or other, objects, and counts must not flicker to 0 nor drift to
            # another kind of object.
            log.debug("pass %d: %d objects, match quality %.3f", iteration, len(pass_instances), pass_quality)
            acceptable = (
                len(pass_instances) >= max(len(instances), 1)
                and pass_quality >= quality - cfg.feedback_quality_margin
            )
            if iteration == 0 or acceptable:
                instances, points, count, quality = pass_instances, pass_points, float(dmg.count), pass_quality
            elif pass_instances:
                log.debug("feedback pass: %d objects, match quality %.2f (%d, %.2f before): the first kept",
                          len(pass_instances), pass_quality, len(instances), quality)
            if not pass_instances:
                # No mask to feed back: another pass would only re-decode the same prompts unguided.
                break
            if iteration < cfg.feedback_iterations:
                exemplars = feedback_exemplars(pass_instances, exemplars, cfg.feedback_exemplars)

        return instances, points, count, quality

    def _scale_check_due(self, frame_hw: tuple[int, int]) -> bool:
        """The first frame after a support, one of another size, and then every `scale_check_interval_s`
        (frames without objects too: a zoomed-out camera finds few or none)."""
        if self._scale_checked is None:
            return True
        checked_at, checked_hw = self._scale_checked
        return checked_hw != frame_hw or time.monotonic() - checked_at >= self.config.scale_check_interval_s

    def _check_scale(self, image_rgb: np.ndarray, found: bool) -> None:
        """Warn when the frame's objects look much larger or smaller than the support object (a camera zoomed or
        moved since the support, a support from another lens): every engine looks for objects near the support's
        size, so the counts would be wrong without a sign of it."""
        self._scale_checked = (time.monotonic(), image_rgb.shape[:2])
        if self.support.profile is None:
            return
        warning = scale_mismatch(frame_scale(image_rgb, self.support.profile), found)
        if warning:
            log.warning("%s", warning)

    def _match_quality(self, instances: list[Instance], similarity: np.ndarray) -> float:
        """The frame's match quality for these instances (see streamer.persense.presence); 0 with none."""
        if not instances:
            return 0.0
        return frame_quality(self.support.calibration.quality(instance_similarity(instances, similarity)))

    def _presence(self, instances: list[Instance], quality: float) -> list[Instance]:
        """The instances, or none when the frame's match quality is below the presence threshold."""
        threshold = self.config.presence_threshold
        if instances and threshold is not None and quality < threshold:
            log.debug("presence: match quality %.2f below %.2f: no object of the support's kind", quality, threshold)
            return []
        return instances
