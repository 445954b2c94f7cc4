"""Replaying an archive: the pipeline over the kept frames, and how its results differ from the recorded ones and
from the simulator's truth. The comparisons are pure functions; `replay` drives them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from streamer.archive.reader import ArchiveReader, DamagedFrame, FrameRow
from streamer.schema import result_to_dict

_BATCH = 256


@dataclass(frozen=True)
class FrameComparison:
    """One replayed frame: recorded and new count (recorded None: recorded without processing), whether the masks
    are the same (None where nothing was recorded), and the truth of the kind compared with (None: unknown)."""

    row_id: int
    camera: str
    frame_index: int
    recorded: int | None
    new: int
    same_masks: bool | None
    truth: int | None

    def line(self) -> str:
        recorded = "-" if self.recorded is None else str(self.recorded)
        diff = "" if self.recorded is None else f" diff {self.new - self.recorded:+d}"
        masks = "" if self.same_masks is None else (" masks same" if self.same_masks else " masks differ")
        truth = "" if self.truth is None else f" truth {self.truth} (new {self.new - self.truth:+d})"
        return f"{self.row_id} {self.camera} frame {self.frame_index}: recorded {recorded} new {self.new}{diff}" \
               f"{masks}{truth}"


@dataclass
class ReplayTotals:
    frames: int = 0
    skipped: int = 0
    skipped_why: list[str] = field(default_factory=list)
    recorded_total: int = 0
    new_total: int = 0
    compared: int = 0
    counts_differ: int = 0
    masks_differ: int = 0
    truth_frames: int = 0
    truth_total: int = 0
    new_total_with_truth: int = 0
    abs_error_total: int = 0

    def add(self, c: FrameComparison) -> None:
        self.frames += 1
        self.new_total += c.new
        if c.recorded is not None:
            self.compared += 1
            self.recorded_total += c.recorded
            self.counts_differ += int(c.new != c.recorded)
            self.masks_differ += int(c.same_masks is False)
        if c.truth is not None:
            self.truth_frames += 1
            self.truth_total += c.truth
            self.new_total_with_truth += c.new
            self.abs_error_total += abs(c.new - c.truth)

    @property
    def truth_error(self) -> float | None:
        """(new total - truth total) / truth total over the frames with truth; None without truth."""
        if not self.truth_total:
            return None
        return (self.new_total_with_truth - self.truth_total) / self.truth_total

    def summary(self) -> dict:
        doc = {"frames": self.frames, "skipped": self.skipped, "compared": self.compared,
               "counts_differ": self.counts_differ, "masks_differ": self.masks_differ,
               "recorded_total": self.recorded_total, "new_total": self.new_total}
        if self.truth_frames:
            doc.update(truth_frames=self.truth_frames, truth_total=self.truth_total,
                       new_total_with_truth=self.new_total_with_truth,
                       truth_error=round(self.truth_error, 5) if self.truth_error is not None else None,
                       mean_abs_error=round(self.abs_error_total / self.truth_frames, 4))
        return doc


def compare(row: FrameRow, recorded: dict | None, new: dict, truth_kind: str | None) -> FrameComparison:
    """A recorded result (the bus JSON, or None) and a new one (result_to_dict with masks) -> their comparison."""
    recorded_count = None if recorded is None or recorded.get("count") is None else int(recorded["count"])
    same_masks = None
    if recorded_count is not None:
        same_masks = [i.get("mask") for i in recorded.get("instances", [])] == [i.get("mask") for i in new["instances"]]
    truth = row.truth.get(truth_kind) if truth_kind else None
    return FrameComparison(row.id, row.camera, row.frame_index, recorded_count, int(new["count"]), same_masks,
                           None if truth is None else int(truth))


def rows_of(reader: ArchiveReader, camera: str | None, limit: int | None) -> Iterator[FrameRow]:
    after, given = 0, 0
    while limit is None or given < limit:
        rows = reader.frames(camera=camera, after_id=after, limit=_BATCH)
        if not rows:
            return
        for row in rows:
            if limit is not None and given >= limit:
                return
            given += 1
            yield row
        after = rows[-1].id


def replay(reader: ArchiveReader, pipeline, *, fixed_support: tuple[np.ndarray, np.ndarray] | None,
           truth_kind: str | None, camera: str | None = None, limit: int | None = None,
           on_frame: Callable[[FrameComparison, dict], None] = lambda c, doc: None) -> ReplayTotals:
    """Segment every readable frame with `pipeline` (a PerSense), with `fixed_support` or each frame's recorded
    support; damaged frames are skipped and counted. on_frame(comparison, the new result's dict) per frame."""
    totals = ReplayTotals()
    in_force = None
    if fixed_support is not None:
        pipeline.set_support(*fixed_support)
    for row in rows_of(reader, camera, limit):
        try:
            image = reader.image(row)
            recorded = reader.result(row)
        except DamagedFrame as exc:
            totals.skipped += 1
            if len(totals.skipped_why) < 10:
                totals.skipped_why.append(f"frame {row.id}: {exc}")
            continue
        if fixed_support is None and row.support_id != in_force:
            pipeline.set_support(*reader.support(row.support_id))
            in_force = row.support_id
        result = pipeline.segment(image)
        doc = result_to_dict(result, include_masks=True, camera=row.camera, frame_index=row.frame_index,
                             archive_id=row.id)
        comparison = compare(row, recorded if recorded.get("schema", "").startswith("persense.result") else None,
                             doc, truth_kind)
        totals.add(comparison)
        on_frame(comparison, doc)
    return totals


def jsonl_line(doc: dict) -> str:
    return json.dumps(doc, separators=(",", ":")) + "\n"
