"""Per-frame cost of the grounding detector (Grounding DINO, the grounding-dino-tiny architecture) on this machine.

The weights are random (nothing is downloaded): the cost of a forward pass does not depend on their values. The
architecture is grounding-dino-tiny's (Swin-T backbone, BERT-base text encoder, 900 queries, 6 + 6 layers), the
frame 640x480, resized as the checkpoint's processor does (shortest edge 800: an 800 x 1066 input).

    .venv/bin/python benchmarks/grounding_cost.py [--frames 5] [--threads 2] [--device cpu|cuda] [--onnx DIR]

Prints the median milliseconds of: the whole model with the text (as transformers runs it), and the image-only part
that runs per frame when the label's text features are fixed (engines.hf.grounding.make_fixed_text_grounding).
With --onnx DIR it also saves the random-weight checkpoint to DIR/checkpoint, exports it with
`persense export grounding` (export.grounding) to DIR/export (kept: a second run reuses it) and times ONNX Runtime
on the same frames.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from engines.hf.grounding import make_fixed_text_grounding, preprocess_frame
from engines.hf.architectures import grounding_dino_tiny_config


def _median_ms(fn, frames: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(frames):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--onnx", type=Path, default=None, metavar="DIR")
    parser.add_argument("--skip-torch", action="store_true", help="time only the ONNX export (with --onnx)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from transformers import GroundingDinoForObjectDetection

    torch.manual_seed(0)
    model = GroundingDinoForObjectDetection(grounding_dino_tiny_config()).eval().to(args.device)
    frame = np.random.default_rng(0).integers(0, 256, (480, 640, 3), np.uint8)
    pixels = torch.from_numpy(preprocess_frame(frame, shortest_edge=800, longest_edge=1333)).to(args.device)
    # "[CLS] all potato . [SEP]" in some vocabulary: the cost does not depend on which ids.
    input_ids = torch.tensor([[101, 2035, 14557, 1012, 102]], device=args.device)
    attention = torch.ones_like(input_ids)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)

    def full():
        with torch.inference_mode():
            model(pixel_values=pixels, input_ids=input_ids, attention_mask=attention)
        sync()

    fixed = make_fixed_text_grounding(model, input_ids, attention)

    def image_only():
        with torch.inference_mode():
            fixed(pixels)
        sync()

    print(f"input {tuple(pixels.shape)}, {args.device}, {torch.get_num_threads()} threads, median of {args.frames}")
    if not args.skip_torch:
        print(f"with text encoder: {_median_ms(full, args.frames):.0f} ms/frame")
        print(f"text fixed (image only): {_median_ms(image_only, args.frames):.0f} ms/frame")
    if args.onnx is not None:
        _onnx_cost(model, frame, args)


def _onnx_cost(model, frame: np.ndarray, args) -> None:
    from transformers import BertTokenizer, GroundingDinoImageProcessor, GroundingDinoProcessor

    from engines.hf.grounding_onnx import OnnxGroundingDetector
    from export.grounding import export_grounding

    if (args.onnx / "export" / "manifest.json").exists():
        print(f"reusing the export in {args.onnx / 'export'}")
    else:
        checkpoint = args.onnx / "checkpoint"
        checkpoint.mkdir(parents=True, exist_ok=True)
        # A small WordPiece vocabulary: the ids differ from BERT's, the cost does not.
        (checkpoint / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "all",
                                                         "potato"]) + "\n")
        model.to("cpu").save_pretrained(checkpoint)
        GroundingDinoProcessor(image_processor=GroundingDinoImageProcessor(),
                               tokenizer=BertTokenizer(str(checkpoint / "vocab.txt"))).save_pretrained(checkpoint)
        start = time.perf_counter()
        export_grounding(checkpoint, "potato", frame.shape[:2], args.onnx / "export")
        print(f"export (with parity check): {time.perf_counter() - start:.0f} s")
    detector = OnnxGroundingDetector(args.onnx / "export", prefer_gpu=args.device != "cpu")
    detector.set_label("potato")
    print(f"onnxruntime, text fixed: {_median_ms(lambda: detector.detect(frame), args.frames):.0f} ms/frame "
          f"({detector.runner.session.get_providers()[0]})")


if __name__ == "__main__":
    main()
