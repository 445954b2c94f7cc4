"""Grounding DINO as the paper's grounding detector: the text "all <label>." -> boxes of the label's objects in a
frame, for P_max (Eq. 1: the most confident box) and PPSM's box gate (Algorithm 2).

The checkpoint is a Hugging Face directory (e.g. IDEA-Research/grounding-dino-tiny, downloaded beforehand): config.json
of model type "grounding-dino", its safetensors and its processor (image processor, BERT tokenizer).

The text is the same for every frame, so its features are computed once per label (`FixedTextGrounding`): per frame
only the image side runs (backbone, encoder with text fusion, decoder), and an ONNX export of it takes the image
alone (export.grounding).
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from engines.errors import EngineError, UserError
from engines.hf.checkpoint import load_model, load_processor

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def prompt_for(label: str) -> str:
    """The paper's grounding prompt: the label prefixed with "all" (and Grounding DINO's closing period)."""
    label = " ".join(label.split())
    if not label:
        raise UserError("the class label is empty: the grounding detector has nothing to look for "
                        "(set support.label, or check the class-label extractor's answer)")
    return f"all {label}."


def resized_hw(hw: tuple[int, int], shortest_edge: int, longest_edge: int | None) -> tuple[int, int]:
    """(H, W) after scaling the short side to `shortest_edge`, less where the long side would pass `longest_edge`
    (the DETR family's resize rule)."""
    h, w = hw
    size = float(shortest_edge)
    short, long = min(h, w), max(h, w)
    if longest_edge is not None and long / short * size > longest_edge:
        size = float(int(round(longest_edge * short / long)))
    if w <= h:
        return int(size * h / w), int(size)
    return int(size), int(size * w / h)


def preprocess_frame(
    image_rgb: np.ndarray,
    shortest_edge: int = 800,
    longest_edge: int | None = 1333,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
) -> np.ndarray:
    """uint8[H, W, 3] RGB -> float32[1, 3, H', W'] resized (bilinear), scaled to [0, 1] and normalised."""
    return preprocess_to(image_rgb, resized_hw(image_rgb.shape[:2], shortest_edge, longest_edge), mean, std)


def preprocess_to(image_rgb: np.ndarray, out_hw: tuple[int, int], mean=IMAGENET_MEAN, std=IMAGENET_STD) -> np.ndarray:
    """uint8[H, W, 3] RGB -> float32[1, 3, *out_hw] resized to exactly out_hw (bilinear) and normalised."""
    out_h, out_w = out_hw
    resized = cv2.resize(image_rgb, (out_w, out_h), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255.0
    resized = (resized - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(resized.transpose(2, 0, 1)[None])


@dataclass(frozen=True)
class TextPrompt:
    """A tokenised grounding prompt.

    Attributes:
        text: the prompt ("all potato.").
        input_ids, attention_mask, token_type_ids: int64[1, T] the tokenizer's output.
        label_positions: int64[L] the positions in 0..T-1 of the label's own tokens (not "all", ".", specials).
    """

    text: str
    input_ids: np.ndarray
    attention_mask: np.ndarray
    token_type_ids: np.ndarray
    label_positions: np.ndarray


def tokenize_prompt(tokenizer, label: str, max_len: int) -> TextPrompt:
    text = prompt_for(label)
    encoded = tokenizer(text, return_tensors="np")
    ids = encoded["input_ids"].astype(np.int64)
    if ids.shape[1] > max_len:
        raise UserError(f"the grounding prompt {text!r} is {ids.shape[1]} tokens, the model takes {max_len}")
    label_ids = set(tokenizer(" ".join(label.split()), add_special_tokens=False)["input_ids"])
    label_ids -= set(getattr(tokenizer, "all_special_ids", []))
    positions = np.flatnonzero(np.isin(ids[0], sorted(label_ids)))
    if len(positions) == 0:
        raise UserError(f"the label {label!r} has no token of its own in the grounding model's vocabulary")
    mask = encoded.get("attention_mask", np.ones_like(ids)).astype(np.int64)
    types = encoded.get("token_type_ids", np.zeros_like(ids)).astype(np.int64)
    return TextPrompt(text, ids, mask, types, positions.astype(np.int64))


def boxes_from_outputs(
    logits: np.ndarray,
    pred_boxes: np.ndarray,
    prompt: TextPrompt,
    frame_hw: tuple[int, int],
    box_threshold: float,
    text_threshold: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Model outputs -> (boxes float32[B, 4] x0, y0, x1, y1 frame pixels, scores float32[B]), best first.

    logits: [1, Q, max_text_len] token logits per query; pred_boxes: [1, Q, 4] (cx, cy, w, h) in [0, 1].
    A box is kept when its confidence (its best token's probability, as Grounding DINO scores boxes) is above
    `box_threshold` and its best probability among the label's own tokens is above `text_threshold`: a box that
    grounds only "all" or "." is not the label's object.
    """
    tokens = prompt.input_ids.shape[1]
    probs = 1.0 / (1.0 + np.exp(-logits[0, :, :tokens].astype(np.float64)))
    scores = probs.max(axis=1)
    label_scores = probs[:, prompt.label_positions].max(axis=1)
    keep = (scores > box_threshold) & (label_scores > text_threshold)
    cx, cy, bw, bh = (pred_boxes[0, keep].astype(np.float64).T if keep.any() else np.zeros((4, 0)))
    h, w = frame_hw
    boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1) * np.array([w, h, w, h])
    boxes = np.clip(boxes, 0, [w, h, w, h])
    order = np.argsort(-scores[keep], kind="stable")
    return boxes[order].astype(np.float32).reshape(-1, 4), scores[keep][order].astype(np.float32)


def make_fixed_text_grounding(model, input_ids, attention_mask, token_type_ids=None):
    """GroundingDinoForObjectDetection + one text -> a torch module `pixel_values -> (logits, pred_boxes)`.

    The text encoder (BERT and the text projection) runs here, once; the module's forward uses its output as a
    constant. The output equals the full model's for the same text (tests/test_paper_grounding.py)."""
    import torch
    from transformers.modeling_outputs import BaseModelOutput
    from transformers.models.grounding_dino import modeling_grounding_dino as gd

    class _ConstantText(torch.nn.Module):
        """Stands in for the text backbone: returns the text's features computed beforehand."""

        def __init__(self, hidden: torch.Tensor):
            super().__init__()
            self.register_buffer("hidden", hidden)

        def forward(self, *args, **kwargs):
            return BaseModelOutput(last_hidden_state=self.hidden)

    class _FixedText(torch.nn.Module):
        def __init__(self):
            super().__init__()
            inner = model.model
            ids = torch.as_tensor(input_ids)
            mask = torch.as_tensor(attention_mask)
            types = torch.zeros_like(ids) if token_type_ids is None else torch.as_tensor(token_type_ids)
            with torch.inference_mode():
                self_masks, position_ids = gd.generate_masks_with_special_tokens_and_transfer_map(
                    ids, special_tokens=inner.special_tokens
                )
                hidden = inner.text_backbone(ids, self_masks[:, None], types, position_ids, return_dict=True)
            self.text_masks = self_masks.clone()
            self.position_ids = position_ids.clone()
            self.register_buffer("input_ids", ids.clone())
            self.register_buffer("attention_mask", mask.clone())
            self.register_buffer("token_type_ids", types.clone())
            self.model = model
            self.text = _ConstantText(hidden.last_hidden_state.clone())

        @contextmanager
        def exportable(self):
            """While exporting: the text's attention masks as constants (ONNX has no aten::cummax, which computes
            them from the token ids; they are the text's, fixed here anyway), and the model's shape assertion
            (aten::_is_all_true, no ONNX op either) off: the export's input shape is fixed and checked once."""
            masks = gd.generate_masks_with_special_tokens_and_transfer_map
            check = gd.torch_compilable_check
            gd.generate_masks_with_special_tokens_and_transfer_map = lambda ids, special_tokens: (
                self.text_masks, self.position_ids)
            gd.torch_compilable_check = lambda *args, **kwargs: None
            try:
                yield
            finally:
                gd.generate_masks_with_special_tokens_and_transfer_map = masks
                gd.torch_compilable_check = check

        def forward(self, pixel_values):
            backbone = self.model.model.text_backbone
            self.model.model.text_backbone = self.text
            try:
                out = self.model(pixel_values=pixel_values, input_ids=self.input_ids,
                                 attention_mask=self.attention_mask, token_type_ids=self.token_type_ids)
            finally:
                self.model.model.text_backbone = backbone
            return out.logits, out.pred_boxes

    return _FixedText().eval()


class GroundingDinoDetector:
    """TextPromptedDetector on transformers' GroundingDinoForObjectDetection (torch, CPU or GPU)."""

    def __init__(self, model_dir: Path, box_threshold: float = 0.15, text_threshold: float = 0.25,
                 device: str = "cpu"):
        try:
            import torch
            from transformers import GroundingDinoForObjectDetection, GroundingDinoProcessor
        except ImportError as exc:
            raise EngineError(f"the Grounding DINO detector needs transformers and torch "
                              f"(pip install 'persense-stream[paper]'): {exc}") from None
        self._torch = torch
        self.model = load_model(GroundingDinoForObjectDetection, model_dir, "grounding-dino", "Grounding DINO")
        self.model.to(device)
        processor = load_processor(GroundingDinoProcessor, model_dir, "Grounding DINO")
        self.tokenizer = processor.tokenizer
        image_processor = processor.image_processor
        size = getattr(image_processor, "size", None) or {}
        self.shortest_edge = int(size.get("shortest_edge", 800))
        self.longest_edge = size.get("longest_edge", 1333)
        self.mean = tuple(getattr(image_processor, "image_mean", None) or IMAGENET_MEAN)
        self.std = tuple(getattr(image_processor, "image_std", None) or IMAGENET_STD)
        self.box_threshold = box_threshold
        self.text_threshold = text_threshold
        self.device = device
        self.prompt: TextPrompt | None = None
        self._fixed = None

    def set_label(self, label: str) -> None:
        self.prompt = tokenize_prompt(self.tokenizer, label, int(self.model.config.max_text_len))
        torch = self._torch
        self._fixed = make_fixed_text_grounding(
            self.model, torch.from_numpy(self.prompt.input_ids).to(self.device),
            torch.from_numpy(self.prompt.attention_mask).to(self.device),
            torch.from_numpy(self.prompt.token_type_ids).to(self.device),
        )
        log.info("grounding detector prompt %r", self.prompt.text)

    def raw_outputs(self, image_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The model's (logits, pred_boxes) for one frame, as numpy."""
        if self._fixed is None:
            raise UserError("the grounding detector has no label: call set_label first")
        pixels = preprocess_frame(image_rgb, self.shortest_edge, self.longest_edge, self.mean, self.std)
        with self._torch.inference_mode():
            logits, boxes = self._fixed(self._torch.from_numpy(pixels).to(self.device))
        return logits.float().cpu().numpy(), boxes.float().cpu().numpy()

    def detect(self, image_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, boxes = self.raw_outputs(image_rgb)
        return boxes_from_outputs(logits, boxes, self.prompt, image_rgb.shape[:2], self.box_threshold,
                                  self.text_threshold)

    def describe_empty(self) -> str:
        return describe_empty(self.prompt, self.box_threshold, self.text_threshold)


def describe_empty(prompt: TextPrompt | None, box_threshold: float, text_threshold: float) -> str:
    """The result's reason when the grounding detector found no box."""
    what = prompt.text if prompt else "(no label)"
    return (f"the grounding detector found no box for {what!r} above box_threshold {box_threshold} "
            f"and text_threshold {text_threshold}")
