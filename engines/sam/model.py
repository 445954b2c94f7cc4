"""SamModel: an exported SAM behind `encode` / `decode` / `predict`, also serving the pipeline's ImageEncoder and
MaskDecoder interfaces (`encode`, `decode_points`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from engines.interfaces import DecoderOutput, ImageEmbedding, PromptGuidance
from engines.sam import transforms as tf
from engines.sam.manifest import SamManifest, read_manifest
from engines.sam.spec import GRID, LOW_RES
from engines.errors import EngineError, UserError

log = logging.getLogger(__name__)

BACKENDS = ("onnxruntime", "tensorrt", "torch")


@dataclass
class SamPayload:
    """What SAM's decoder needs beyond the features: the backend's own copy of the embedding (on the GPU where
    the backend runs there) and the resized input size (h, w) that positions prompts and masks."""

    embedding: Any
    input_hw: tuple[int, int]
    backend: str


class SamModel:
    """One exported SAM model on one backend. Not thread-safe.

    Args:
        backend: an object from engines.sam.backends.
        manifest: the model directory's manifest.
        max_batch: prompts per decoder call; larger batches are split (bounds memory: each prompt holds its own
            copy of the 64 x 64 image tokens inside the decoder).
        guidance_alpha: strength of PerSAM's target-guided attention (the similarity map's weight on the
            token-to-image attention logits).
        pipeline_best_only: decode_points returns only each prompt's best candidate (see decode_points).
    """

    def __init__(
        self,
        backend,
        manifest: SamManifest,
        max_batch: int | None = None,
        guidance_alpha: float = 1.0,
        pipeline_best_only: bool = True,
    ):
        self.backend = backend
        self.manifest = manifest
        self.embed_dim = manifest.embed_dim
        self.max_batch = max_batch or (256 if backend.device == "cuda" else 64)
        engine_limit = getattr(backend, "max_prompts", None)
        if engine_limit:
            self.max_batch = min(self.max_batch, engine_limit)
        self.guidance_alpha = float(guidance_alpha)
        self.pipeline_best_only = pipeline_best_only
        self._zero_bias = np.zeros((1, GRID, GRID), np.float32)
        self._zero_target = np.zeros((1, self.embed_dim), np.float32)

    @property
    def device(self) -> str:
        """'cuda' or 'cpu': where the encoder and decoder run (the stream overlaps a GPU encoder with the rest)."""
        return self.backend.device

    @property
    def name(self) -> str:
        """Identifies the model (type + manifest checksum): keys caches of support prototypes."""
        return f"sam-{self.manifest.model_type}-{self.manifest.checksum[:12]}"

    # -- encoding ------------------------------------------------------------------------------------------
    def encode(self, image_rgb: np.ndarray) -> ImageEmbedding:
        """uint8[H, W, 3] RGB -> ImageEmbedding (features float32[C, 64, 64]; reusable for many decodes)."""
        image, input_hw = tf.preprocess(image_rgb)
        native, features = self.backend.encode(image)
        return self._embedding(image_rgb, native, features, input_hw)

    def encode_batch(self, images_rgb: Sequence[np.ndarray]) -> list[ImageEmbedding]:
        """Several uint8[H, W, 3] RGB frames (of any sizes: each is resized and padded to the input) -> their
        ImageEmbeddings, equal to `encode` of each within the runtime's tolerance: in one encoder call where the
        backend and the export take batches (onnxruntime, `persense export sam --encoder-batch N`), else one each."""
        prepared = [tf.preprocess(image) for image in images_rgb]
        batched = getattr(self.backend, "encode_batch", None)
        if batched is None or len(prepared) < 2:
            encoded = [self.backend.encode(image) for image, _ in prepared]
        else:
            encoded = batched(np.concatenate([image for image, _ in prepared]))
        return [self._embedding(rgb, native, features, input_hw)
                for rgb, (native, features), (_, input_hw) in zip(images_rgb, encoded, prepared)]

    def _embedding(self, image_rgb: np.ndarray, native, features, input_hw: tuple[int, int]) -> ImageEmbedding:
        return ImageEmbedding(
            features=np.asarray(features, np.float32),
            frame_hw=tuple(image_rgb.shape[:2]),
            valid_hw=tf.embedding_valid_hw(input_hw),
            payload=SamPayload(native, input_hw, self.backend.name),
        )

    # -- decoding --------------------------------------------------------------------------------------------
    def _payload(self, embedding: ImageEmbedding) -> SamPayload:
        payload = embedding.payload
        if not isinstance(payload, SamPayload) or payload.backend != self.backend.name:
            raise UserError("this embedding was not made by this SAM model's encode()")
        return payload

    def guidance_inputs(self, embedding: ImageEmbedding, guidance: PromptGuidance | None):
        """-> (attention_bias float32[1, 64, 64], target_embedding float32[1, C]); zeros without target guidance.

        The similarity map may cover the valid grid only; cells outside it (SAM's padding) get its minimum, so
        they draw no attention. The prototype is L2-normalised: it is scaled to the typical norm of this image's
        features so that the semantic prompt has the magnitude of PerSAM's mean-pooled target feature.
        """
        if guidance is None or not guidance.targeted:
            return self._zero_bias, self._zero_target
        sim = np.asarray(guidance.similarity, np.float32)
        vh, vw = embedding.valid_hw
        if sim.shape not in ((vh, vw), (GRID, GRID)) or sim.ndim != 2:
            raise UserError(f"guidance similarity map is {sim.shape}, expected {(vh, vw)} or {(GRID, GRID)}")
        bias = np.full((1, GRID, GRID), float(sim.min()), np.float32)
        bias[0, : sim.shape[0], : sim.shape[1]] = sim
        bias *= self.guidance_alpha
        proto = np.asarray(guidance.prototype, np.float32).reshape(-1)
        if proto.shape[0] != self.embed_dim:
            raise UserError(f"guidance prototype has {proto.shape[0]} channels, the model {self.embed_dim}")
        feats = embedding.features[:, :vh, :vw].reshape(self.embed_dim, -1)
        scale = float(np.linalg.norm(feats, axis=0).mean()) / max(float(np.linalg.norm(proto)), 1e-12)
        return bias, (proto * scale)[None, :].astype(np.float32)

    def decode_lowres(
        self,
        embedding: ImageEmbedding,
        points_xy: np.ndarray,
        multimask: bool = True,
        guidance: PromptGuidance | None = None,
        best_only: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """N single positive points (float[N, 2] frame pixels) -> (logits float32[N, K, 256, 256],
        scores float32[N, K]); K = 3 with multimask, else 1. Decoded in batches of at most max_batch.

        best_only: keep only each prompt's best-scoring candidate, cropped to the low-res grid's valid part:
            logits float32[N, 1, ceil(h / 4), ceil(w / 4)] for the resized (h, w) input, scores float32[N, 1].
            It is chosen per batch (on the GPU for TensorRT and torch), so the other candidates never pile up.
        """
        payload = self._payload(embedding)
        points = np.asarray(points_xy, np.float32).reshape(-1, 2)
        k = 1 if best_only or not multimask else 3
        crop = tf.lowres_valid_cells(payload.input_hw) if best_only else None
        gh, gw = crop or (LOW_RES, LOW_RES)
        if len(points) == 0:
            return np.zeros((0, k, gh, gw), np.float32), np.zeros((0, k), np.float32)
        coords, labels = tf.prompt_batch(tf.points_to_input(points, embedding.frame_hw, payload.input_hw))
        bias, target = self.guidance_inputs(embedding, guidance)

        def run(part: slice) -> tuple[np.ndarray, np.ndarray]:
            return self.backend.decode(
                payload.embedding, coords[part], labels[part], bias, target, multimask, best_crop=crop
            )

        if len(points) <= self.max_batch:
            return run(slice(None))
        # Filled batch by batch: no list of partial results to concatenate (that would double the peak).
        logits = np.empty((len(points), k, gh, gw), np.float32)
        scores = np.empty((len(points), k), np.float32)
        for start in range(0, len(points), self.max_batch):
            part = slice(start, start + self.max_batch)
            logits[part], scores[part] = run(part)
        return logits, scores

    def decode(
        self, embedding: ImageEmbedding, points_xy: np.ndarray, multimask: bool = True
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """-> (masks bool[N, K, H, W] at frame resolution, scores float32[N, K], low_res_logits float32[N, K, 256,
        256]), as SamPredictor.predict for each point (masks = upscaled logits > 0)."""
        logits, scores = self.decode_lowres(embedding, points_xy, multimask)
        masks = tf.upscale_logits(logits, self._payload(embedding).input_hw, embedding.frame_hw) > 0.0
        return masks, scores, logits

    def predict(self, image_rgb: np.ndarray, points_xy: np.ndarray, multimask: bool = True):
        """decode(encode(image_rgb), points_xy, multimask)."""
        return self.decode(self.encode(image_rgb), points_xy, multimask)

    # -- the pipeline's MaskDecoder ----------------------------------------------------------------------
    def decode_points(
        self,
        embedding: ImageEmbedding,
        points_xy: np.ndarray,
        guidance: PromptGuidance | None = None,
        *,
        best_only: bool | None = None,
    ) -> DecoderOutput:
        """Low-resolution multimask logits for N prompts; valid_hw = the resized frame / 4 (fractional).

        best_only (default: the model's `pipeline_best_only`): only each prompt's best-scoring candidate
        (K = 1, cropped to the grid's valid part; see decode_lowres), which is all the pipeline reads; else all
        three, float32[N, 3, 256, 256] (393 MB for 500 prompts).
        """
        best = self.pipeline_best_only if best_only is None else best_only
        logits, scores = self.decode_lowres(embedding, points_xy, True, guidance, best_only=best)
        valid = tf.lowres_valid_hw(self._payload(embedding).input_hw)
        return DecoderOutput(logits=logits, scores=scores, valid_hw=valid)


def load_sam(
    model_dir: Path | str,
    backend: str = "onnxruntime",
    *,
    prefer_gpu: bool = True,
    threads: int = 0,
    max_batch: int | None = None,
    verify: bool = False,
    guidance_alpha: float = 1.0,
    pipeline_best_only: bool = True,
) -> SamModel:
    """Load a directory written by `persense export sam` on one backend.

    Args:
        backend: onnxruntime (TensorRT / CUDA / CPU providers), tensorrt (engines built with --tensorrt), or torch
            (segment-anything, from the recorded checkpoint; the reference).
        threads: CPU threads for onnxruntime / torch (0 = their default).
        verify: also check the files' sha256 checksums (slow for ViT-H).
        pipeline_best_only: the pipeline's decode_points keeps only each prompt's best mask (decode() always
            returns all K).

    Raises:
        EngineError: missing or corrupt directory, unknown backend, missing engines (one line).
    """
    from engines.sam import backends as be

    model_dir = Path(model_dir)
    if backend not in BACKENDS:
        raise EngineError(f"unknown SAM backend {backend!r}: use one of {', '.join(BACKENDS)}")
    manifest = read_manifest(model_dir, verify=verify)
    if backend == "onnxruntime":
        runner = be.OrtBackend(model_dir, manifest, prefer_gpu=prefer_gpu, threads=threads)
    elif backend == "tensorrt":
        runner = be.TrtBackend(model_dir, manifest)
    else:
        runner = be.TorchBackend(model_dir, manifest, prefer_gpu=prefer_gpu, threads=threads)
    log.info("SAM %s on %s (%s)", manifest.model_type, backend, runner.device)
    return SamModel(runner, manifest, max_batch=max_batch, guidance_alpha=guidance_alpha,
                    pipeline_best_only=pipeline_best_only)
