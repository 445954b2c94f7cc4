"""The three ways to run an exported SAM: ONNX Runtime, TensorRT, and segment-anything in torch (the reference).

Each backend runs the raw networks on prepared arrays; geometry (resizing, coordinates, masks) lives in
engines.sam.transforms and engines.sam.model. Embeddings stay in the backend's own memory (GPU where there is
one) between encoding and decoding; only the features the pipeline reads are copied to the host.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from engines.sam.manifest import SamManifest
from engines.sam.spec import LOW_RES
from engines.errors import EngineError

log = logging.getLogger(__name__)


def _outputs(multimask: bool) -> tuple[str, str]:
    return ("masks", "scores") if multimask else ("single_mask", "single_score")


def decoder_inputs(embedding, coords, labels, no_mask, has_mask, bias, target) -> dict[str, Any]:
    """The batched decoder graph's inputs by name (engines.sam.modules.DECODER_INPUTS), without a mask prompt."""
    return {
        "image_embeddings": embedding,
        "point_coords": coords,
        "point_labels": labels,
        "mask_input": no_mask,
        "has_mask_input": has_mask,
        "attention_bias": bias,
        "target_embedding": target,
    }


def best_candidate(logits, scores, crop_hw: tuple[int, int]):
    """Each prompt's best-scoring mask: logits [N, K, 256, 256], scores [N, K] -> logits [N, 1, h, w] (the top-left
    crop_hw), scores [N, 1]. numpy arrays or torch tensors (selected where they are, e.g. on the GPU); ties go to
    the first candidate, as np.argmax (and the pipeline's choice among K) does."""
    n = scores.shape[0]
    best = scores.argmax(1)
    if isinstance(scores, np.ndarray):
        rows = np.arange(n)
    else:
        import torch

        rows = torch.arange(n, device=scores.device)
    h, w = crop_hw
    return logits[rows, best, :h, :w][:, None], scores[rows, best][:, None]


def _profile(n: int) -> str:
    return f"point_coords:{n}x2x2,point_labels:{n}x2,mask_input:1x1x{LOW_RES}x{LOW_RES}"


# ONNX Runtime's TensorRT provider: one engine for 1..512 prompts (else it rebuilds as the prompt count varies).
_DECODER_TRT_EP = {
    "TensorrtExecutionProvider": {
        "trt_profile_min_shapes": _profile(1),
        "trt_profile_opt_shapes": _profile(64),
        "trt_profile_max_shapes": _profile(512),
    }
}


class OrtBackend:
    """ONNX Runtime: TensorRT / CUDA / CPU providers, in that order of preference, with I/O binding."""

    name = "onnxruntime"

    def __init__(self, model_dir: Path, manifest: SamManifest, prefer_gpu: bool = True, threads: int = 0):
        from engines.ort import OrtRunner, create_session

        self.encoder = OrtRunner(create_session(model_dir / "encoder.onnx", prefer_gpu, threads=threads))
        self.decoder = OrtRunner(
            create_session(model_dir / "decoder.onnx", prefer_gpu, threads=threads, provider_options=_DECODER_TRT_EP)
        )
        self.device = self.encoder.device
        self._no_mask = np.zeros((1, 1, LOW_RES, LOW_RES), np.float32)
        self._has_mask = np.zeros(1, np.float32)

    def encode(self, image: np.ndarray) -> tuple[Any, np.ndarray]:
        """float32[1, 3, 1024, 1024] -> (native embedding, float32[C, 64, 64] host features)."""
        keep = ("image_embeddings",) if self.encoder.device == "cuda" else ()
        out = self.encoder.run({"image": image}, ["image_embeddings"], keep_on_device=keep)["image_embeddings"]
        features = out.numpy()[0] if keep else out[0]
        return out, features

    @property
    def encoder_batches(self) -> bool:
        """Whether the encoder takes several images per call (exported with --encoder-batch: a named batch
        dimension where a plain export has 1)."""
        return not isinstance(self.encoder.session.get_inputs()[0].shape[0], int)

    def encode_batch(self, images: np.ndarray) -> list[tuple[Any, np.ndarray]]:
        """float32[B, 3, 1024, 1024] -> per image (native embedding, float32[C, 64, 64] host features), as
        `encode` gives them: in one call where the encoder takes batches, else one call per image. A batch's
        embeddings are on the host (slices of one output), also where the encoder runs on the GPU."""
        if len(images) == 1 or not self.encoder_batches:
            return [self.encode(images[i:i + 1]) for i in range(len(images))]
        out = self.encoder.run({"image": images}, ["image_embeddings"])["image_embeddings"]
        return [(out[i:i + 1], out[i]) for i in range(len(images))]

    def decode(self, embedding: Any, coords, labels, bias, target, multimask: bool,
               best_crop: tuple[int, int] | None = None):
        """-> (logits float32[n, K, 256, 256], scores float32[n, K]); with `best_crop` (h, w) only each prompt's
        best mask, cropped (`best_candidate`), selected on the host: onnxruntime's outputs arrive there."""
        names = _outputs(multimask)
        out = self.decoder.run(
            decoder_inputs(embedding, coords, labels, self._no_mask, self._has_mask, bias, target), names
        )
        logits, scores = out[names[0]], out[names[1]]
        if best_crop is not None:
            logits, scores = best_candidate(logits, scores, best_crop)
        return logits, scores


def find_engine(model_dir: Path, manifest: SamManifest, role: str) -> Path:
    """The engine the manifest records for `role` ('encoder' | 'decoder'), checked against this GPU, this TensorRT
    version and the ONNX export it was built from; else EngineError (one line)."""
    from engines.trt import recorded_engine

    return recorded_engine(model_dir, manifest.engines.get(role), role, manifest.onnx_sha256(f"{role}.onnx"),
                           "persense export sam")


class TrtBackend:
    """TensorRT's Python runtime; the embedding stays on the GPU between encoder and decoder."""

    name = "tensorrt"

    def __init__(self, model_dir: Path, manifest: SamManifest):
        from engines.trt import TrtRunner

        self.encoder = TrtRunner(find_engine(model_dir, manifest, "encoder"))
        self.decoder = TrtRunner(find_engine(model_dir, manifest, "decoder"))
        self.device = "cuda"
        # The decoder engine's optimisation profile caps the prompts per call.
        self.max_prompts = int(self.decoder.engine.get_tensor_profile_shape("point_coords", 0)[2][0])
        import torch

        self._torch = torch
        self._no_mask = torch.zeros((1, 1, LOW_RES, LOW_RES), device="cuda")
        self._has_mask = torch.zeros(1, device="cuda")

    def encode(self, image: np.ndarray):
        emb = self.encoder.run_device({"image": image})["image_embeddings"].float()
        return emb, emb[0].cpu().numpy()

    def decode(self, embedding, coords, labels, bias, target, multimask: bool,
               best_crop: tuple[int, int] | None = None):
        """As OrtBackend.decode; the best mask is selected on the GPU, so only it crosses to the host."""
        out = self.decoder.run_device(
            decoder_inputs(embedding, coords, labels, self._no_mask, self._has_mask, bias, target)
        )
        names = _outputs(multimask)
        logits, scores = out[names[0]], out[names[1]]
        if best_crop is not None:
            logits, scores = best_candidate(logits, scores, best_crop)
        return logits.float().cpu().numpy(), scores.float().cpu().numpy()


class TorchBackend:
    """segment-anything in torch from the checkpoint the export recorded: SAM's own prompt encoder and mask
    decoder when no guidance is given (the reference), the export wrapper when it is."""

    name = "torch"

    def __init__(self, model_dir: Path, manifest: SamManifest, prefer_gpu: bool = True, threads: int = 0):
        try:
            import torch
        except ImportError:
            raise EngineError("the torch backend needs torch and segment-anything (pip install '.[sam]')") from None
        from engines.sam.modules import SamDecoderModule
        from engines.sam.spec import load_checkpoint

        candidates = [model_dir / "checkpoint.pth"]
        if manifest.checkpoint.get("path"):
            candidates.append(Path(manifest.checkpoint["path"]))
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise EngineError(
                f"the torch backend needs the checkpoint: none at {', '.join(str(p) for p in candidates)} "
                "(export with --copy-checkpoint)"
            )
        if threads:
            torch.set_num_threads(threads)
        self._torch = torch
        self.device = "cuda" if prefer_gpu and torch.cuda.is_available() else "cpu"
        self.sam = load_checkpoint(path, manifest.model_type).to(self.device)
        self.guided = SamDecoderModule(self.sam)

    def encode(self, image: np.ndarray):
        with self._torch.no_grad():
            emb = self.sam.image_encoder(self._torch.from_numpy(image).to(self.device))
        return emb, emb[0].cpu().numpy()

    def decode(self, embedding, coords, labels, bias, target, multimask: bool,
               best_crop: tuple[int, int] | None = None):
        """As OrtBackend.decode, selecting on the model's device."""
        torch = self._torch
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(self.device)  # noqa: E731
        with torch.no_grad():
            if not bias.any() and not target.any():
                # The prompt encoder appends the (0, 0, -1) padding point itself when no box is given.
                if (labels[:, -1] == -1).all():
                    coords, labels = coords[:, :-1], labels[:, :-1]
                sparse, dense = self.sam.prompt_encoder(points=(t(coords), t(labels)), boxes=None, masks=None)
                low, iou = self.sam.mask_decoder(
                    image_embeddings=embedding,
                    image_pe=self.sam.prompt_encoder.get_dense_pe(),
                    sparse_prompt_embeddings=sparse,
                    dense_prompt_embeddings=dense,
                    multimask_output=multimask,
                )
            else:
                no_mask = torch.zeros(1, 1, LOW_RES, LOW_RES, device=self.device)
                multi, multi_iou, single, single_iou = self.guided(
                    embedding, t(coords), t(labels), no_mask, torch.zeros(1, device=self.device), t(bias), t(target)
                )
                low, iou = (multi, multi_iou) if multimask else (single, single_iou)
            if best_crop is not None:
                low, iou = best_candidate(low, iou, best_crop)
        return low.cpu().numpy(), iou.cpu().numpy()
