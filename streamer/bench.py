"""Benchmarks of the real pipeline: the code `persense run` runs per frame, without the network.

Per frame: read from the source (capture), PerSense.segment (encode, similarity, density, prompts, decode,
postprocess), and the publish step up to the socket (streamer.stream.messages.result_message: RLE masks, JSON).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from streamer.errors import UserError
from streamer.machine import gpu_memory_mb, peak_rss_mb
from streamer.persense import PerSense
from streamer.persense.pipeline import STAGES

# The pipeline's stages, and tracking (measure, track, count) before the result is published.
_TABLE_STAGES = STAGES[:-1] + ("tracking",) + STAGES[-1:]
from streamer.sources.base import FrameSource, SourceEnded, SourceError
from streamer.stream.ahead import JustInTime
from streamer.stream.messages import PartOptions, result_message
from streamer.stream.tally import CameraTally
from streamer.stream.tally_config import CountLineConfig, TallyConfig

log = logging.getLogger(__name__)



@dataclass
class BenchReport:
    """Per-stage latencies (ms) of every measured frame, and what the frames held."""

    label: str
    frame_hw: tuple[int, int] = (0, 0)
    stage_ms: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})
    end_to_end_ms: list[float] = field(default_factory=list)
    inference_ms: list[float] = field(default_factory=list)  # PerSense.segment's stages together, per frame
    objects: list[int] = field(default_factory=list)
    truth: list[int] = field(default_factory=list)
    wall_s: float = 0.0

    def summary(self) -> dict:
        def stats(values):
            if not values:
                return None
            arr = np.asarray(values)
            return {"median": round(float(np.median(arr)), 3), "p99": round(float(np.percentile(arr, 99)), 3)}

        frames = len(self.end_to_end_ms)
        out = {
            "label": self.label,
            "frame": f"{self.frame_hw[1]}x{self.frame_hw[0]}",
            "frames": frames,
            "fps": round(frames / self.wall_s, 2) if self.wall_s > 0 else None,
            "stage_ms": {s: stats(v) for s, v in self.stage_ms.items() if v},
            "end_to_end_ms": stats(self.end_to_end_ms),
            "inference_ms": stats(self.inference_ms),
            "objects_per_frame": round(float(np.mean(self.objects)), 2) if self.objects else 0.0,
            "peak_rss_mb": round(peak_rss_mb(), 1),
        }
        tracking = self.stage_ms.get("tracking")
        if tracking and self.inference_ms:
            # Measured on the same frames in the same run: what counting items adds to segmenting them.
            out["tracking_share_of_inference"] = round(float(np.median(tracking) / np.median(self.inference_ms)), 4)
        if self.truth:
            errors = np.abs(np.asarray(self.objects) - np.asarray(self.truth))
            out["truth_per_frame"] = round(float(np.mean(self.truth)), 2)
            out["count_mae"] = round(float(errors.mean()), 3)
            out["count_error_pct"] = round(float(100 * errors.sum() / max(np.sum(self.truth), 1)), 2)
        gpu = gpu_memory_mb()
        if gpu is not None:
            out["gpu_mb"] = gpu  # held at the end of the run: the models and the largest batch's buffers
        return out


def _read(source: FrameSource, label: str):
    """-> (frame, read start, read end) from perf_counter, or None at the source's end."""
    t0 = time.perf_counter()
    try:
        frame = source.read(timeout=5.0)
    except SourceEnded:
        return None
    except SourceError as exc:
        raise UserError(f"the source failed: {exc}") from None
    if frame is None:
        raise UserError(f"{label}: the source gave no frame within 5 s")
    return frame, t0, time.perf_counter()


def _frames(source: FrameSource, pipeline: PerSense, count: int, label: str, encode_ahead: bool):
    """Up to `count` (frame, read start, read end, EncodedFrame | None).

    The next frame is read on another thread while the caller processes this one, as `persense run`'s capture
    thread reads the camera while the inference thread works (a camera delivers frames whether or not the
    pipeline is busy). With encode_ahead that thread also encodes it, started just in time as `persense run`'s
    encoder thread does (streamer.stream.ahead)."""
    if not encode_ahead:
        with ThreadPoolExecutor(1, thread_name_prefix="capture") as capture:
            pending = capture.submit(_read, source, label) if count else None
            for i in range(count):
                item = pending.result()
                if item is None:
                    return
                pending = capture.submit(_read, source, label) if i + 1 < count else None
                yield (*item, None)
        return
    schedule = JustInTime()
    never = threading.Event()  # the generator's consumer ends the loop, not a stop signal

    def fetch():
        schedule.wait_until_due(never)
        item = _read(source, label)
        if item is None:
            return None
        encoded = pipeline.encode(item[0].image)
        schedule.encoded(encoded.encode_ms / 1e3)
        return (*item, encoded)

    with ThreadPoolExecutor(1, thread_name_prefix="encoder") as encoder:
        pending = encoder.submit(fetch) if count else None
        for i in range(count):
            item = pending.result()
            if item is None:
                return
            # Started before the next fetch is queued: its delay counts from this segment.
            schedule.segment_started()
            pending = encoder.submit(fetch) if i + 1 < count else None
            try:
                yield item  # the caller segments and publishes it meanwhile
            finally:
                schedule.segment_ended()


def run_benchmark(
    pipeline: PerSense,
    source: FrameSource,
    frames: int,
    warmup: int = 2,
    label: str = "bench",
    parts: PartOptions = PartOptions(),
    encode_ahead: bool = False,
) -> BenchReport:
    """Read, segment and encode `warmup + frames` frames; measure the last `frames`.

    encode_ahead: encode frame t+1 on another thread while frame t is segmented (`stream.encode_ahead`).
    """
    report = BenchReport(label)
    # Tracking, counting and measuring as a counting line makes the stream do them (streamer.stream.tally).
    tally = CameraTally(TallyConfig(lines=[CountLineConfig(points=(0.5, 0.0, 0.5, 1.0))]), "bench")
    try:
        source.open()
    except SourceError as exc:
        raise UserError(f"cannot open the source: {exc}") from None
    try:
        done = 0
        start = None
        frame_items = _frames(source, pipeline, warmup + frames, label, encode_ahead)
        for frame, t0, t1, encoded in frame_items:
            result = pipeline.segment(frame.image, encoded)
            t_tally = time.perf_counter()
            tally.observe(frame, result)
            tracking_ms = (time.perf_counter() - t_tally) * 1e3
            t2 = time.perf_counter()
            result_message(frame, result, done, pipeline.support.support_id, parts)
            t3 = time.perf_counter()
            done += 1
            if done <= warmup:
                continue
            if start is None:
                start = t0
            report.frame_hw = frame.image.shape[:2]
            report.stage_ms["capture"].append((t1 - t0) * 1e3)
            for stage, ms in result.timings_ms.items():
                report.stage_ms.setdefault(stage, []).append(ms)
            report.stage_ms.setdefault("tracking", []).append(tracking_ms)
            report.inference_ms.append(sum(result.timings_ms.values()))
            report.stage_ms["publish"].append((t3 - t2) * 1e3)
            report.end_to_end_ms.append((t3 - t0) * 1e3)
            report.objects.append(result.count)
            if frame.truth_count is not None:
                report.truth.append(frame.truth_count)
        report.wall_s = time.perf_counter() - start if start is not None else 0.0
    finally:
        frame_items.close()  # its thread's read in flight ends before the source closes
        source.close()
    if not report.end_to_end_ms:
        raise UserError(f"{label}: the source ended before any frame was measured")
    return report


def format_table(summaries: list[dict]) -> str:
    """A plain-text table: one row per run, median / p99 ms per stage."""
    stages = [s for s in _TABLE_STAGES if any(s in x["stage_ms"] for x in summaries)]
    head = ["run", "frame", "fps", "objects", "truth"] + stages + ["end-to-end", "rss MB"]
    rows = [head]
    for x in summaries:
        cell = lambda st: "-" if st is None else f"{st['median']:.1f}/{st['p99']:.1f}"  # noqa: E731
        rows.append(
            [x["label"], x["frame"], f"{x['fps']}", f"{x['objects_per_frame']}", f"{x.get('truth_per_frame', '-')}"]
            + [cell(x["stage_ms"].get(s)) for s in stages]
            + [cell(x["end_to_end_ms"]), f"{x['peak_rss_mb']}"]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"{x['label']}: tracking (measure, track, count) {x['stage_ms']['tracking']['median']:.2f} ms per frame "
             f"median at {x['objects_per_frame']} objects = {100 * x['tracking_share_of_inference']:.1f}% of inference "
             f"({x['inference_ms']['median']:.1f} ms)" for x in summaries if "tracking_share_of_inference" in x]
    return "\n".join(lines + notes) + "\n(stage cells: median/p99 milliseconds)"
