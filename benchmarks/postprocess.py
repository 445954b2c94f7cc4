"""Post-processing and publishing cost of many instances on a large frame (issue 5's 500 x 1080p figure).

    python benchmarks/postprocess.py --instances 500 --width 1920 --height 1080 --repeats 20

Builds decoder outputs with one disc-shaped object per prompt, in the forms decoders return: SAM-like logits
with three candidates per prompt (N x 3 x 256 x 256, the public decode API), the best candidate only cropped to
the frame's cells (what the pipeline's SAM decoder returns), and a joint label map (the embedded decoder's form),
then times choosing the best mask, NMS, scaling to the frame inside boxes (postprocess) and building the
published message with RLE masks (publish). Reports medians in ms; run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engines.interfaces import DecoderOutput  # noqa: E402
from streamer.persense.postprocess import instances_from_decoder  # noqa: E402
from streamer.sources.base import Frame  # noqa: E402
from streamer.stream.messages import PartOptions, result_message  # noqa: E402
from streamer.types import SegmentationResult  # noqa: E402


def sam_like(n: int, frame_hw, rng) -> tuple[DecoderOutput, np.ndarray]:
    h, w = frame_hw
    scale = 256 / max(h, w)
    vh, vw = h * scale, w * scale
    radius = max(1.5, 0.5 * np.sqrt(0.4 * vh * vw / n))
    cx, cy = rng.uniform(radius, vw - radius, n), rng.uniform(radius, vh - radius, n)
    yy, xx = np.mgrid[0:256, 0:256].astype(np.float32)
    logits = np.empty((n, 3, 256, 256), np.float32)
    for i in range(n):
        disc = radius - np.hypot(xx - cx[i], yy - cy[i])
        logits[i, 0], logits[i, 1], logits[i, 2] = disc - 1.0, disc, disc + 1.0
    scores = rng.uniform(0.5, 1.0, (n, 3)).astype(np.float32)
    return DecoderOutput(logits=logits, scores=scores, valid_hw=(vh, vw)), np.stack([cx / scale, cy / scale], 1)


def best_only(output: DecoderOutput) -> DecoderOutput:
    """What the pipeline's SAM decoder returns: each prompt's best candidate, cropped to the valid cells."""
    best = np.argmax(output.scores, axis=1)
    rows = np.arange(len(best))
    h, w = int(np.ceil(output.valid_hw[0])), int(np.ceil(output.valid_hw[1]))
    logits = np.ascontiguousarray(output.logits[rows, best, :h, :w][:, None])
    return DecoderOutput(logits, output.scores[rows, best][:, None], output.valid_hw)


def label_map(n: int, frame_hw, rng, grid_scale=0.25) -> tuple[DecoderOutput, np.ndarray]:
    h, w = frame_hw
    gh, gw = int(h * grid_scale), int(w * grid_scale)
    radius = max(1, int(0.5 * np.sqrt(0.4 * gh * gw / n)))
    labels = np.zeros((gh, gw), np.int32)
    cx, cy = rng.uniform(radius, gw - radius, n), rng.uniform(radius, gh - radius, n)
    for i in range(n):
        cv2.circle(labels, (int(cx[i]), int(cy[i])), radius, i + 1, -1)
    scores = rng.uniform(0.5, 1.0, (n, 1)).astype(np.float32)
    return DecoderOutput(None, labels=labels, scores=scores, valid_hw=(gh, gw)), np.stack([cx / grid_scale, cy / grid_scale], 1)


def time_it(output, points, frame_hw, repeats):
    h, w = frame_hw
    frame = Frame(np.zeros((h, w, 3), np.uint8), 0, time.time(), "bench")
    post, publish, count = [], [], 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        instances = instances_from_decoder(output, points, frame_hw)
        t1 = time.perf_counter()
        result_message(frame, SegmentationResult(w, h, instances), 0, "bench", PartOptions())
        t2 = time.perf_counter()
        post.append((t1 - t0) * 1e3)
        publish.append((t2 - t1) * 1e3)
        count = len(instances)
    return {"instances": count, "postprocess_ms": round(float(np.median(post)), 2),
            "publish_ms": round(float(np.median(publish)), 2),
            "total_ms": round(float(np.median(np.add(post, publish))), 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=500)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    frame_hw = (args.height, args.width)
    sam_output, sam_points = sam_like(args.instances, frame_hw, rng)
    report = {
        "frame": f"{args.width}x{args.height}",
        "sam_three_candidates": time_it(sam_output, sam_points, frame_hw, args.repeats),
        "sam_best_only": time_it(best_only(sam_output), sam_points, frame_hw, args.repeats),
        "label_map": time_it(*label_map(args.instances, frame_hw, rng), frame_hw, args.repeats),
    }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
