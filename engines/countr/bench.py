"""Time the CounTR density map generator per frame on each backend.

    python -m engines.countr.bench --model-dir models/countr --backends onnxruntime torch --size 640x480
    python -m engines.countr.bench --random ...   # a random-weight ViT-B, exported to a temporary directory

Reports, per backend and exemplar count, the median and min wall time of `CountrDMG.density` over --repeat runs
(after one warm-up) and the windows / exemplar groups it ran. Random weights time the same as real ones.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from engines.countr.engine import CountrDMG

log = logging.getLogger(__name__)


def _frame(width: int, height: int, exemplars: int, box: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    xy = rng.uniform(0, [width - box, height - box], (exemplars, 2))
    return image, np.concatenate([xy, xy + box], axis=1).astype(np.float32)


def time_dmg(dmg: CountrDMG, image: np.ndarray, boxes: np.ndarray, repeat: int) -> dict:
    layout = dmg.model_density(image, boxes)  # warm-up, and the work done
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        dmg.density(image, None, boxes)
        times.append((time.perf_counter() - start) * 1000)
    return {
        "median_ms": statistics.median(times),
        "min_ms": min(times),
        "windows": layout.layout.num_windows if layout else 0,
        "groups": layout.groups if layout else 0,
    }


def _backends(args, tmp: Path) -> dict:
    from engines.countr.manifest import load_backend

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.random:
        backends = {name: load_backend(args.model_dir, name) for name in args.backends}
        if args.threads and "onnxruntime" in backends:
            from engines.countr.backends import OrtBackend

            backends["onnxruntime"] = OrtBackend(args.model_dir / "countr.onnx", threads=args.threads)
        return backends

    from engines.countr.backends import OrtBackend, TorchBackend
    from engines.countr.model import CounTR
    from export.countr import export_countr

    torch.manual_seed(0)
    model = CounTR().eval()
    out = {}
    if "onnxruntime" in args.backends:
        export_countr(model, tmp, checkpoint=None)
        out["onnxruntime"] = OrtBackend(tmp / "countr.onnx", threads=args.threads)
    if "torch" in args.backends:
        out["torch"] = TorchBackend(model)
    if "tensorrt" in args.backends:
        raise SystemExit("--random does not build TensorRT engines: export with --tensorrt and use --model-dir")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model-dir", type=Path, help="a `persense export countr` directory")
    source.add_argument("--random", action="store_true", help="random-weight ViT-B CounTR")
    parser.add_argument("--backends", nargs="+", default=["onnxruntime", "torch"],
                        choices=["onnxruntime", "torch", "tensorrt"])
    parser.add_argument("--size", default="640x480", help="frame WIDTHxHEIGHT (default %(default)s)")
    parser.add_argument("--exemplars", type=int, nargs="+", default=[1, 4], help="exemplar boxes per frame")
    parser.add_argument("--box", type=int, default=40, help="exemplar box side in frame pixels (< 13 at 480 p: tiled)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch and onnxruntime (0: default)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    width, height = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory(prefix="countr-bench-") as tmp:
        backends = _backends(args, Path(tmp))
        print(f"CounTR {width}x{height}, box {args.box}px, {args.repeat} runs after a warm-up, "
              f"threads={args.threads or 'default'}")
        for name, backend in backends.items():
            dmg = CountrDMG(backend)
            for m in args.exemplars:
                image, boxes = _frame(width, height, m, args.box)
                r = time_dmg(dmg, image, boxes, args.repeat)
                print(f"{name:12s} exemplars={m} windows={r['windows']:3d} groups={r['groups']} "
                      f"median={r['median_ms']:9.1f} ms  min={r['min_ms']:9.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
