"""`persense export grounding`: a Grounding DINO checkpoint directory and one label -> DIR/grounding.onnx +
DIR/manifest.json, the per-frame graph with the label's text features fixed:

    pixel_values float32[1, 3, H', W'] -> logits float32[1, Q, max_text_len], pred_boxes float32[1, Q, 4]

H' x W' is the checkpoint processor's resize of --frame-size (800 x 1066 for 640x480). The text encoder runs once,
here; its output is a constant of the graph (engines.hf.grounding.make_fixed_text_grounding).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from engines.errors import EngineError, UserError
from engines.outputs import check_output_dir, make_output_dir

log = logging.getLogger(__name__)

DEFAULT_OPSET = 18


def add_arguments(parser) -> None:
    parser.add_argument("--model-dir", type=Path, required=True,
                        help="Grounding DINO checkpoint directory (Hugging Face format)")
    parser.add_argument("--label", required=True, help="the object's name; the prompt is 'all <label>.'")
    parser.add_argument("--frame-size", default="640x480", metavar="WxH", help="camera frame size (default 640x480)")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help="ONNX opset (default %(default)s)")


def _frame_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UserError(f"--frame-size {text!r}: expected WxH, e.g. 640x480") from None
    if not (16 <= w <= 8192 and 16 <= h <= 8192):
        raise UserError(f"--frame-size {text!r}: width and height must be 16 to 8192")
    return w, h


def run(args) -> int:
    width, height = _frame_size(args.frame_size)
    check_output_dir(args.out)
    manifest = export_grounding(args.model_dir, args.label, (height, width), args.out, args.opset)
    log.info("wrote %s", manifest)
    return 0


def export_grounding(model_dir: Path, label: str, frame_hw: tuple[int, int], out_dir: Path,
                     opset: int = DEFAULT_OPSET) -> Path:
    """Export, then check ONNX Runtime's output against torch's on a random frame; -> the manifest's path."""
    import torch

    from engines.hf.grounding import (GroundingDinoDetector, make_fixed_text_grounding, preprocess_frame,
                                      tokenize_prompt)
    from engines.hf.grounding_onnx import FORMAT, MANIFEST, MODEL_TYPE, ONNX_NAME

    try:
        import onnxscript  # noqa: F401  (the torch.export-based exporter needs it)
    except ImportError:
        raise UserError("ONNX export needs onnxscript: pip install 'persense-stream[paper]'") from None
    detector = GroundingDinoDetector(model_dir)  # strict loading: one line for a bad directory
    model = detector.model
    prompt = tokenize_prompt(detector.tokenizer, label, int(model.config.max_text_len))
    fixed = make_fixed_text_grounding(model, torch.from_numpy(prompt.input_ids),
                                      torch.from_numpy(prompt.attention_mask), torch.from_numpy(prompt.token_type_ids))
    frame = np.random.default_rng(0).integers(0, 256, (*frame_hw, 3), np.uint8)
    pixels = torch.from_numpy(preprocess_frame(frame, detector.shortest_edge, detector.longest_edge,
                                               detector.mean, detector.std))
    out_dir = make_output_dir(out_dir)
    onnx_path = out_dir / ONNX_NAME
    log.info("exporting Grounding DINO for %r at %dx%d to %s", prompt.text, pixels.shape[3], pixels.shape[2],
             onnx_path)
    with torch.no_grad(), fixed.exportable():
        expected = fixed(pixels)
        program = torch.onnx.export(fixed, (pixels,), dynamo=True, opset_version=opset,
                                    input_names=["pixel_values"], output_names=["logits", "pred_boxes"],
                                    verbose=False)
    # Weights over protobuf's 2 GB limit go to a data file beside it; grounding-dino-tiny (~0.7 GB) fits inside.
    program.save(str(onnx_path), external_data=False)
    _check_parity(onnx_path, pixels.numpy(), [t.numpy() for t in expected])
    manifest = {
        "model_type": MODEL_TYPE,
        "format": FORMAT,
        "onnx": ONNX_NAME,
        "label": " ".join(label.split()),
        "prompt": prompt.text,
        "input_ids": prompt.input_ids[0].tolist(),
        "label_positions": prompt.label_positions.tolist(),
        "frame_hw": list(frame_hw),
        "input_hw": [int(pixels.shape[2]), int(pixels.shape[3])],
        "mean": list(detector.mean),
        "std": list(detector.std),
        "checkpoint": str(Path(model_dir).resolve()),
        "opset": opset,
    }
    path = out_dir / MANIFEST
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return path


def _check_parity(onnx_path: Path, pixels: np.ndarray, expected: list[np.ndarray], tolerance: float = 1e-3,
                  max_swapped: float = 0.01) -> None:
    """ONNX Runtime's outputs equal torch's, query by query (logits where finite: positions past the text are -inf
    in both), except queries whose two-stage proposals tie: the top-k ranking of nearly equal proposal scores may
    order them differently, which swaps those queries (their boxes are then torch's boxes of other queries). At most
    `max_swapped` of the queries may differ, and only so."""
    from engines.ort import create_session

    logits, boxes = create_session(onnx_path, prefer_gpu=False).run(None, {"pixel_values": pixels})
    want_logits, want_boxes = expected
    finite = np.isfinite(want_logits)
    if not np.array_equal(finite, np.isfinite(logits)):
        raise EngineError("the ONNX export of Grounding DINO masks other text positions than torch")
    logit_error = np.abs(np.where(finite, logits, 0.0) - np.where(finite, want_logits, 0.0)).max(axis=-1)[0]
    box_error = np.abs(boxes - want_boxes).max(axis=-1)[0]
    differ = np.flatnonzero((logit_error > tolerance * np.maximum(np.abs(want_logits[finite]).max(), 1.0))
                            | (box_error > tolerance))
    if len(differ) == 0:
        return
    # A swapped query's box moved: it is another torch query's box, not its own.
    distance = np.abs(boxes[0, differ][:, None, :] - want_boxes[0][None, :, :]).max(axis=-1)
    distance[np.arange(len(differ)), differ] = np.inf
    swapped = (box_error[differ] > tolerance) & (distance.min(axis=1) <= tolerance)
    if len(differ) > max_swapped * boxes.shape[1] or not swapped.all():
        raise EngineError(f"the ONNX export of Grounding DINO differs from torch in {len(differ)} of "
                          f"{boxes.shape[1]} queries (logits up to {logit_error.max():.3g}, boxes up to "
                          f"{box_error.max():.3g})")
    log.info("ONNX Runtime matches torch except %d queries in another order (proposals with tied scores)",
             len(differ))
