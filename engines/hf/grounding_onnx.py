"""Grounding DINO exported with one label's text fixed (`persense export grounding`) on ONNX Runtime: per frame the
graph takes only the image, `pixel_values float32[1, 3, H', W'] -> logits [1, Q, max_text_len], pred_boxes [1, Q, 4]`,
at the fixed input size of the export. Pre- and post-processing are the torch detector's (engines.hf.grounding).

DIR/manifest.json records the label, its tokens and the input size; the detector refuses another label.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from engines.errors import EngineError, first_line
from engines.hf.checkpoint import read_small_json
from engines.hf.grounding import TextPrompt, boxes_from_outputs, describe_empty, preprocess_to

log = logging.getLogger(__name__)

MODEL_TYPE = "grounding-dino-fixed-text"
FORMAT = 1
ONNX_NAME = "grounding.onnx"
MANIFEST = "manifest.json"


def read_manifest(model_dir: Path) -> dict:
    path = Path(model_dir) / MANIFEST
    manifest = read_small_json(path, f"no {MANIFEST} in {model_dir}: not a `persense export grounding` directory")
    if not isinstance(manifest, dict) or manifest.get("model_type") != MODEL_TYPE:
        raise EngineError(f"{path} is not a grounding export (model_type {MODEL_TYPE!r} expected)")
    if manifest.get("format") != FORMAT:
        raise EngineError(f"{path}: format {manifest.get('format')!r}, this version reads {FORMAT}: export again")
    return manifest


class OnnxGroundingDetector:
    """TextPromptedDetector for one label, on an export of `persense export grounding`."""

    def __init__(self, model_dir: Path, box_threshold: float = 0.15, text_threshold: float = 0.25,
                 prefer_gpu: bool = True):
        from engines.ort import OrtRunner, create_session

        self.model_dir = Path(model_dir)
        manifest = read_manifest(self.model_dir)
        try:
            ids = np.asarray(manifest["input_ids"], np.int64).reshape(1, -1)
            self.exported = TextPrompt(
                manifest["prompt"], ids, np.ones_like(ids), np.zeros_like(ids),
                np.asarray(manifest["label_positions"], np.int64),
            )
            self.label = str(manifest["label"])
            self.input_hw = (int(manifest["input_hw"][0]), int(manifest["input_hw"][1]))
            self.mean = tuple(float(v) for v in manifest["mean"])
            self.std = tuple(float(v) for v in manifest["std"])
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise EngineError(f"{self.model_dir / MANIFEST}: malformed ({first_line(exc)})") from None
        self.runner = OrtRunner(create_session(self.model_dir / manifest.get("onnx", ONNX_NAME), prefer_gpu))
        self.box_threshold = box_threshold
        self.text_threshold = text_threshold
        self.prompt: TextPrompt | None = None
        self._warned_size = False

    def set_label(self, label: str) -> None:
        if " ".join(label.split()) != self.label:
            raise EngineError(
                f"the grounding export {self.model_dir} is for the label {self.label!r}, the support's is {label!r}: "
                f"export it again with --label, or use gate.grounding.backend: torch"
            )
        self.prompt = self.exported

    def detect(self, image_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.prompt is None:
            raise EngineError("the grounding detector has no label: call set_label first")
        h, w = image_rgb.shape[:2]
        # Boxes come out in [0, 1] of the input, so any frame maps back exactly; only the aspect may distort.
        if not self._warned_size and abs(self.input_hw[1] / self.input_hw[0] - w / h) > 0.01:
            self._warned_size = True
            log.warning("frames are %dx%d, the grounding export's input %dx%d: the image is stretched to it",
                        w, h, self.input_hw[1], self.input_hw[0])
        pixels = preprocess_to(image_rgb, self.input_hw, self.mean, self.std)
        out = self.runner.run({"pixel_values": pixels})
        return boxes_from_outputs(out["logits"], out["pred_boxes"], self.prompt, (h, w), self.box_threshold,
                                  self.text_threshold)

    def describe_empty(self) -> str:
        return describe_empty(self.prompt, self.box_threshold, self.text_threshold)
