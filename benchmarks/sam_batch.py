"""Frames of several cameras through one SAM encoder call against one call per camera, on the CPU (ONNX Runtime).

    python benchmarks/sam_batch.py                          # tiny SAM, random weights, 4 cameras, 5 rounds
    python benchmarks/sam_batch.py --model-type vit_b --rounds 3

Exports the model with random weights twice into a temporary folder, plain and with a batch dimension
(`persense export sam --encoder-batch`), and encodes the same 640x480 frames of `--cameras` cameras each round: one
SamModel.encode per camera, then one SamModel.encode_batch for all, one after the other (the machine's load changes
between rounds, not between the two). Prints frames/s of both, their ratio per round and the median ratio, the CPU
milliseconds each spent per frame (this process's CPU time: on a machine shared with other work it says what a
frame costs where frames/s say how much of the cores the run got), the largest difference of the embeddings, and
the load average. Exit 1 when the median ratio is below --bound.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-type", default="tiny", choices=("tiny", "vit_b"))
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime's threads (0: one per core)")
    parser.add_argument("--bound", type=float, default=1.3, help="the least median ratio that passes")
    args = parser.parse_args()

    from engines.sam import load_sam
    from export.sam import load_model
    from export.sam_onnx import export_onnx
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from sam_testing import textured_image

    with tempfile.TemporaryDirectory() as tmp:
        plain, batched = Path(tmp) / "plain", Path(tmp) / "batched"
        for out, batch in ((plain, False), (batched, True)):
            sam, info = load_model(args.model_type, None, 7, out)
            export_onnx(sam, args.model_type, out, checkpoint_info=info, encoder_batch=batch)
            del sam
        per_camera = load_sam(plain, "onnxruntime", prefer_gpu=False, threads=args.threads)
        together = load_sam(batched, "onnxruntime", prefer_gpu=False, threads=args.threads)
        frames = [textured_image(480, 640, seed=i) for i in range(args.cameras)]
        # Warm-up: ONNX Runtime's first two runs of a shape touch their tensors' memory afresh (tiny: some 73,000
        # page faults, 290 MB, a frame, which cost more CPU than the arithmetic); from the third run on its arena
        # and memory pattern reuse it. Measured with getrusage's minor faults, one thread, 2026-12-07.
        for _ in range(_WARM_RUNS):
            singles = [per_camera.encode(frame) for frame in frames]
            many = together.encode_batch(frames)
        diff = max(float(np.abs(a.features - b.features).max()) for a, b in zip(singles, many))
        ratios = []
        for round_index in range(args.rounds):
            load = os.getloadavg()[0]
            one_each, one_each_cpu, faults = _timed(lambda: [per_camera.encode(frame) for frame in frames])
            batch, batch_cpu, batch_faults = _timed(lambda: together.encode_batch(frames))
            ratios.append(one_each / batch)
            n = len(frames)
            print(f"round {round_index + 1}: one call per camera {n / one_each:.2f} frames/s "
                  f"({1e3 * one_each_cpu / n:.0f} ms CPU a frame), one call for {n} cameras {n / batch:.2f} frames/s "
                  f"({1e3 * batch_cpu / n:.0f} ms CPU a frame): x{ratios[-1]:.2f}; page faults {faults // n} / "
                  f"{batch_faults // n} a frame (load average {load:.2f})", flush=True)
    median = float(np.median(ratios))
    print(f"SAM {args.model_type} encoder on the CPU, {args.cameras} cameras: batched x{median:.2f} the per-camera "
          f"calls' frames/s (median of {args.rounds} rounds); embeddings differ by at most {diff:.2e}")
    return 0 if median >= args.bound else 1


_WARM_RUNS = 3


def _timed(call) -> tuple[float, float, int]:
    """(wall s, this process's CPU s, minor page faults) of one call."""
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    wall, cpu = time.perf_counter(), time.process_time()
    call()
    return (time.perf_counter() - wall, time.process_time() - cpu,
            resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults)


if __name__ == "__main__":
    sys.exit(main())
