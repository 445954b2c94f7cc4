"""VIP-LLaVA as the paper's class-label extractor (CLE): the masked support image and the prompt "Name the object in
the image?" -> the model's answer -> its noun (engines.hf.nouns).

The checkpoint is a Hugging Face directory (e.g. llava-hf/vip-llava-7b-hf, downloaded beforehand): config.json of
model type "vipllava", its safetensors and its processor (CLIP image processor and LLaMA tokenizer). Greedy
decoding, so one support always gets the same label.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from engines.errors import EngineError, UserError
from engines.hf.checkpoint import load_model, load_processor
from engines.hf.nouns import noun_of

log = logging.getLogger(__name__)

PROMPT = "Name the object in the image?"
# VIP-LLaVA's conversation template (its model card), with the image where the processor expands it.
TEMPLATE = (
    "A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, "
    "detailed, and polite answers to the human's questions.###Human: <image>\n{prompt}###Assistant:"
)


def masked_support(image_rgb: np.ndarray, mask: np.ndarray, margin: float = 0.1) -> np.ndarray:
    """Algorithm 1, line 1: I_masked = I_S * M_S (pixels off the mask black), cropped to the mask's box plus
    `margin` of its size on each side. The crop is ours: a small object in a large support image would otherwise
    be a few pixels of the CLE's 336 x 336 input."""
    mask = np.asarray(mask, bool)
    if mask.shape != image_rgb.shape[:2] or not mask.any():
        raise UserError("the class-label extractor needs a non-empty mask of the support image's size")
    masked = np.where(mask[..., None], image_rgb, 0).astype(np.uint8)
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    pad_x = int(round((xs.max() - xs.min() + 1) * margin))
    pad_y = int(round((ys.max() - ys.min() + 1) * margin))
    return masked[max(ys.min() - pad_y, 0): min(ys.max() + 1 + pad_y, h),
                  max(xs.min() - pad_x, 0): min(xs.max() + 1 + pad_x, w)]


class VipLlavaLabelExtractor:
    """ClassLabelExtractor on transformers' VipLlavaForConditionalGeneration (torch, CPU or GPU)."""

    def __init__(self, model_dir: Path, device: str = "cpu", max_new_tokens: int = 24, dtype: str = "auto"):
        """dtype: the weights' type in memory ("auto": the checkpoint's, float16 for llava-hf/vip-llava-7b-hf)."""
        try:
            import torch
            from transformers import AutoProcessor, VipLlavaForConditionalGeneration
        except ImportError as exc:
            raise EngineError(f"the VIP-LLaVA label extractor needs transformers and torch "
                              f"(pip install 'persense-stream[paper]'): {exc}") from None
        self._torch = torch
        self.model = load_model(VipLlavaForConditionalGeneration, model_dir, "vipllava", "VIP-LLaVA",
                                dtype=dtype if dtype == "auto" else getattr(torch, dtype)).to(device)
        self.processor = load_processor(AutoProcessor, model_dir, "VIP-LLaVA")
        self.device = device
        self.max_new_tokens = max_new_tokens
        self.name = f"vipllava:{Path(model_dir).name}"
        self.last_answer = ""

    def answer(self, image_rgb: np.ndarray, mask: np.ndarray) -> str:
        """The model's answer to the paper's prompt about the masked support (greedy decoding)."""
        inputs = self.processor(
            images=masked_support(image_rgb, mask), text=TEMPLATE.format(prompt=PROMPT), return_tensors="pt"
        ).to(self.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        with self._torch.inference_mode():
            tokens = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        new = tokens[:, inputs["input_ids"].shape[1]:]
        return self.processor.batch_decode(new, skip_special_tokens=True)[0].strip()

    def extract(self, image_rgb: np.ndarray, mask: np.ndarray) -> str:
        self.last_answer = self.answer(image_rgb, mask)
        label = noun_of(self.last_answer)
        log.info("class label %r from VIP-LLaVA's answer %r", label, self.last_answer[:200])
        return label
