"""Batched SAM decoding vs one decoder call per point (the paper's way), same weights, same prompts, same frame.

Columns, per prompt count N (the image is encoded once, outside the timings):
  predictor   segment_anything.SamPredictor.predict once per point (torch; masks upscaled to the frame each call)
  ort_single  the exported decoder on ONNX Runtime, one call per point (low-res logits)
  ort_batch   the exported decoder on ONNX Runtime, all N points in one call (split into --max-batch chunks)
Ratios (predictor / ort_batch and ort_single / ort_batch) are the figures to report: absolute times on shared
machines drift.

    .venv/bin/python benchmarks/decoder_batching.py --model-type vit_b --threads 2
    .venv/bin/python benchmarks/decoder_batching.py --model-dir models/sam-vit-b --json out.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engines.sam import load_sam  # noqa: E402


def _time(fn, repeats: int) -> float:
    """Median wall time of `repeats` calls, in milliseconds (one untimed warm-up call first)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def _export(model_type: str, seed: int, out: Path) -> Path:
    from export.sam import load_model
    from export.sam_onnx import export_onnx

    sam, info = load_model(model_type, None, seed, out)
    export_onnx(sam, model_type, out, checkpoint_info=info)
    return out


def run(model_dir: Path, counts: list[int], threads: int, max_batch: int, frame_hw: tuple[int, int]) -> dict:
    import torch
    from segment_anything import SamPredictor

    from engines.sam.spec import load_checkpoint

    torch.set_num_threads(threads)
    model = load_sam(model_dir, "onnxruntime", prefer_gpu=False, threads=threads, max_batch=max_batch)
    h, w = frame_hw
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    embedding = model.encode(image)
    predictor = SamPredictor(load_checkpoint(model_dir / "checkpoint.pth", model.manifest.model_type))
    predictor.set_image(image)
    label = np.array([1])

    rows = []
    for n in counts:
        points = rng.uniform([0, 0], [w - 1, h - 1], (n, 2)).astype(np.float32)
        repeats = 5 if n <= 16 else 2 if n <= 64 else 1

        def per_point_predictor():
            for p in points:
                predictor.predict(p[None], label, multimask_output=True)

        def per_point_ort():
            for p in points:
                model.decode_lowres(embedding, p[None])

        def batched_ort():
            model.decode_lowres(embedding, points)

        row = {
            "prompts": n,
            "predictor_ms": _time(per_point_predictor, repeats),
            "ort_single_ms": _time(per_point_ort, repeats),
            "ort_batch_ms": _time(batched_ort, repeats),
        }
        row["speedup_vs_predictor"] = row["predictor_ms"] / row["ort_batch_ms"]
        row["speedup_vs_ort_single"] = row["ort_single_ms"] / row["ort_batch_ms"]
        rows.append(row)
        print(
            f"N={n:4d}  predictor {row['predictor_ms']:9.1f} ms  ort_single {row['ort_single_ms']:9.1f} ms  "
            f"ort_batch {row['ort_batch_ms']:9.1f} ms  x{row['speedup_vs_predictor']:.2f} vs predictor  "
            f"x{row['speedup_vs_ort_single']:.2f} vs ort_single",
            flush=True,
        )
    import onnxruntime

    return {
        "model_type": model.manifest.model_type,
        "frame": [w, h],
        "threads": threads,
        "max_batch": max_batch,
        "machine": platform.processor() or platform.machine(),
        "versions": {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__},
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model-dir", type=Path, help="a directory written by `persense export sam` (with "
                        "checkpoint.pth: --random-weights or --copy-checkpoint)")
    source.add_argument("--model-type", choices=["tiny", "vit_b", "vit_l", "vit_h"],
                        help="export this architecture with random weights to a temporary directory first")
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 16, 64, 256])
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch and onnxruntime")
    parser.add_argument("--max-batch", type=int, default=64, help="prompts per batched decoder call")
    parser.add_argument("--frame", type=int, nargs=2, default=[640, 480], metavar=("W", "H"))
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model_dir or _export(args.model_type, 0, Path(tmp))
        result = run(model_dir, args.counts, args.threads, args.max_batch, (args.frame[1], args.frame[0]))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
