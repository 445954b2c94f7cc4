"""The archive (streamer.archive): the keep policy, the writer's bounds and failures, reading back, and bad input.

The crash test (SIGKILL at random moments) is tests/test_archive_crash.py, replay tests/test_archive_replay.py,
the audit trail tests/test_archive_audit.py and the review page tests/test_console_review_browser.py.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from streamer.archive.config import ArchiveConfig, KeepPolicy
from streamer.archive.layout import MARKER, check_archive_dir
from streamer.archive.policy import AFTER, COUNT_JUMP, LOW_QUALITY, MARK, OUT_OF_SPEC, SAMPLE, CameraRules, FrameFacts
from streamer.archive.reader import ArchiveReader, DamagedFrame, decode_image
from streamer.archive.recorder import Archive
from streamer.archive.writer import ArchivedFrame, ArchiveMetrics, ArchiveWriter
from streamer.errors import UserError
from streamer.sources.base import Frame
from streamer.types import Instance, SegmentationResult
from waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]
MIB = 2**20


def _disk(path: Path) -> int:
    return sum(os.lstat(os.path.join(d, f)).st_blocks * 512 for d, _, files in os.walk(path) for f in files)


def _noise_frame(index: int, rng: np.random.Generator, h: int = 240, w: int = 320) -> Frame:
    # Noise does not compress: each JPEG is ~100 KB, so a 1 MiB archive must remove old frames every few writes.
    return Frame(rng.integers(0, 256, (h, w, 3), np.uint8), index, time.time(), "cam0", truth_count=3,
                 truth_kinds={"product": 3, "distractor": 1})


def _result(count: int = 2, quality: float = 0.9) -> SegmentationResult:
    instances = [Instance(k, 0.9, (10 * k, 10, 10 * k + 8, 18), np.ones((8, 8), bool)) for k in range(count)]
    return SegmentationResult(320, 240, instances, match_quality=quality)


# -- the policy ---------------------------------------------------------------------------------------------
def test_policy_rules_keep_what_they_name():
    rules = CameraRules(KeepPolicy(every_n=5, every_s=None, quality_below=0.5, count_jump=3, before_s=0,
                                   after_s=0.25))
    kept = {}
    counts = [10] * 12 + [20] + [20] * 5
    for i, count in enumerate(counts):
        facts = FrameFacts(ts=i * 0.1, count=count, match_quality=0.3 if i == 7 else 0.9, out_of_spec=int(i == 3),
                           marked=i == 9)
        kept[i] = rules.decide(facts)
    assert [i for i, r in kept.items() if SAMPLE in r] == [0, 5, 10, 15]
    assert OUT_OF_SPEC in kept[3] and LOW_QUALITY in kept[7] and MARK in kept[9] and COUNT_JUMP in kept[12]
    # after_s = 0.25 s at 10 frames/s: the two frames after an event (not more)
    assert AFTER in kept[4] and kept[6] == [] and AFTER in kept[13] and AFTER in kept[14] and kept[16] == []
    assert kept[1] == [] and kept[2] == []


def test_policy_holds_the_seconds_before_an_event():
    rules = CameraRules(KeepPolicy(every_s=None, quality_below=0.5, before_s=0.35, after_s=0))
    for i in range(10):
        facts = FrameFacts(ts=i * 0.1, count=5, match_quality=0.9)
        assert rules.decide(facts) == []
        rules.hold(facts.ts, i)
    event = FrameFacts(ts=1.0, count=5, match_quality=0.2)
    reasons = rules.decide(event)
    assert rules.wants_before(reasons)
    assert rules.take_held(event.ts) == [7, 8, 9]  # 0.7, 0.8 and 0.9 s: within 0.35 s of 1.0


def test_archive_keeps_out_of_spec_frames_and_a_reject(tmp_path):
    totals = {"cam0": 0}
    config = ArchiveConfig(enabled=True, path=tmp_path / "a", policy=KeepPolicy(every_s=None, before_s=0,
                                                                                 after_s=0))
    archive = Archive(config, ["cam0"], CollectorRegistry(), out_of_spec_total=lambda camera: totals[camera])
    archive.start()
    rng = np.random.default_rng(0)
    try:
        for i in range(6):
            totals["cam0"] += int(i == 2)
            if i == 4:
                archive.note_reject("cam0")
            archive.offer(_noise_frame(i, rng), _result(), "s1")
        assert wait_until(archive.writer.idle, 10)
    finally:
        archive.stop()
    rows = ArchiveReader(config.path).frames()
    assert [(r.frame_index, r.reasons) for r in rows] == [(2, "out_of_spec"), (4, "reject")]
    assert [r.frame_index for r in ArchiveReader(config.path).frames(kinds=("rejects",))] == [2, 4]


# -- the writer ---------------------------------------------------------------------------------------------
def test_writer_never_passes_its_limit_and_removes_the_oldest(tmp_path):
    registry = CollectorRegistry()
    config = ArchiveConfig(enabled=True, path=tmp_path / "a", max_bytes=MIB, fsync=False)
    writer = ArchiveWriter(config, ArchiveMetrics(registry, ["cam0"]))
    rng = np.random.default_rng(1)
    largest = 0
    for i in range(60):  # written on this thread, one by one, so the disk is measured after every write
        frame = _noise_frame(i, rng)
        writer._write(ArchivedFrame("cam0", i, frame.capture_ts, frame.image, b'{"count": 2}', None, None, 2, 0.9,
                                    3, None, "s1", ["sample"]))
        largest = max(largest, _disk(config.path))
    writer.stop()
    assert largest <= config.max_bytes, largest
    assert registry.get_sample_value("persense_archive_removed_total", {"why": "size"}) > 30
    rows = ArchiveReader(config.path).frames()
    assert rows and rows[-1].frame_index == 59 and rows[0].frame_index > 30  # the newest kept, the oldest gone
    # Every file left is indexed, every indexed file is there.
    files = {str(p.relative_to(config.path)) for p in (config.path / "frames").rglob("*") if p.is_file()}
    assert files == {r.image for r in rows} | {r.result for r in rows}


def test_writer_removes_frames_past_their_age(tmp_path):
    config = ArchiveConfig(enabled=True, path=tmp_path / "a", max_age_s=0.5, fsync=False)
    writer = ArchiveWriter(config)
    rng = np.random.default_rng(2)
    frame = _noise_frame(0, rng)
    writer._write(ArchivedFrame("cam0", 0, frame.capture_ts, frame.image, b"{}", None, None, 1, 0.9, None, None,
                                "s1", ["sample"]))
    time.sleep(0.6)
    writer._remove_old()
    assert ArchiveReader(config.path).frames() == []
    writer.stop()


def test_an_unwritable_archive_is_reported_and_the_frames_counted(tmp_path, caplog):
    registry = CollectorRegistry()
    config = ArchiveConfig(enabled=True, path=tmp_path / "a", fsync=False)
    writer = ArchiveWriter(config, ArchiveMetrics(registry, ["cam0"]))
    writer.start()
    rng = np.random.default_rng(3)
    # Root may write anywhere: a file where the frames' folder belongs makes every frame's write fail.
    shutil.rmtree(config.path / "frames")
    (config.path / "frames").write_text("in the way")

    def put(i):
        frame = _noise_frame(i, rng)
        writer.put(ArchivedFrame("cam0", i, frame.capture_ts, frame.image, b"{}", None, None, 1, 0.9, None, None,
                                 "s1", ["sample"]))

    with caplog.at_level(logging.ERROR, "streamer.archive.writer"):
        for i in range(3):
            put(i)
        assert wait_until(writer.idle, 10)
    status = writer.status()
    assert not status["ok"] and "writing failed" in status["error"]
    assert registry.get_sample_value("persense_archive_ok") == 0
    assert registry.get_sample_value("persense_archive_dropped_total", {"camera": "cam0"}) == 3
    assert len([r for r in caplog.records if "writing failed" in r.getMessage()]) == 1  # one line, not one a frame
    (config.path / "frames").unlink()
    (config.path / "frames").mkdir()
    put(3)
    assert wait_until(writer.idle, 10)
    assert writer.status()["ok"] and registry.get_sample_value("persense_archive_ok") == 1
    writer.stop()


def test_a_full_queue_drops_frames_and_counts_them(tmp_path):
    registry = CollectorRegistry()
    writer = ArchiveWriter(ArchiveConfig(enabled=True, path=tmp_path / "a", queue_size=2),
                           ArchiveMetrics(registry, ["cam0"]))  # not started: nothing leaves the queue
    rng = np.random.default_rng(4)
    frame = _noise_frame(0, rng)
    accepted = [writer.put(ArchivedFrame("cam0", i, 0.0, frame.image, b"{}", None, None, 1, 0.9, None, None, "s",
                                         ["sample"])) for i in range(5)]
    assert accepted == [True, True, False, False, False]
    assert registry.get_sample_value("persense_archive_dropped_total", {"camera": "cam0"}) == 3


# -- reading back and bad input --------------------------------------------------------------------------------
def test_a_truncated_image_is_damaged_not_half_a_frame():
    import cv2

    ok, data = cv2.imencode(".jpg", np.full((64, 64, 3), 128, np.uint8))
    whole = data.tobytes()
    assert decode_image(whole).shape == (64, 64, 3)
    with pytest.raises(DamagedFrame, match="cut short"):
        decode_image(whole[: len(whole) // 2])
    ok, data = cv2.imencode(".png", np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(DamagedFrame, match="cut short"):
        decode_image(data.tobytes()[:-20])


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streamer", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})


def _small_archive(path: Path, n: int = 3) -> None:
    writer = ArchiveWriter(ArchiveConfig(enabled=True, path=path, fsync=False, image_format="png"))
    rng = np.random.default_rng(5)
    for i in range(n):
        frame = _noise_frame(i, rng, 32, 32)
        writer._write(ArchivedFrame("cam0", i, frame.capture_ts, frame.image, b'{"count": 1}', None, None, 1, 0.9,
                                    1, None, "s1", ["sample"]))
    writer.stop()


@pytest.mark.parametrize("damage, message", [
    ("file", "is a file, not an archive directory"),
    ("newer", "newer than this persense reads"),
    ("index", "the index does not open"),
    ("missing", "not an archive"),
])
def test_bad_archives_get_one_line_and_exit_2(tmp_path, damage, message):
    path = tmp_path / "a"
    if damage == "file":
        path.write_text("not a folder")
    elif damage == "newer":
        _small_archive(path)
        (path / MARKER).write_text(json.dumps({"format": "persense.archive", "version": 99}))
    elif damage == "index":
        _small_archive(path)
        for extra in ("-wal", "-shm"):
            (path / f"index.sqlite{extra}").unlink(missing_ok=True)
        (path / "index.sqlite").write_bytes(b"this is not a database" * 100)
    for args in (["replay", str(path)], ["run", "--source", f"archive:{path}", "--metrics-port", "0"]):
        done = _cli(*args)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0] and "Traceback" not in done.stderr, done.stderr


def test_a_damaged_frame_is_skipped_and_counted(tmp_path):
    path = tmp_path / "a"
    _small_archive(path, 4)
    reader = ArchiveReader(path)
    rows = reader.frames()
    victim = path / rows[1].image
    victim.write_bytes(victim.read_bytes()[:-30])
    (path / rows[2].result).unlink()
    from streamer.archive.source import ArchiveSource

    source = ArchiveSource(path, "cam0", realtime=False)
    source.open()
    read = []
    with pytest.raises(Exception, match="end of archive"):
        for _ in range(10):
            read.append(source.read(1.0))
    assert len(read) == 3 and source.corrupt.total == 1  # the source needs the image only; the result is replay's
    source.close()


def test_check_archive_dir_makes_a_new_one_and_refuses_another_format(tmp_path):
    made = check_archive_dir(tmp_path / "new", create=True)
    assert (made / MARKER).exists()
    (made / MARKER).write_text(json.dumps({"format": "something else", "version": 1}))
    with pytest.raises(UserError, match="names format"):
        check_archive_dir(made, create=False)


def test_export_of_a_time_range_is_an_archive_of_those_frames(tmp_path):
    import zipfile

    path = tmp_path / "a"
    _small_archive(path, 6)
    rows = ArchiveReader(path).frames()
    since, until = rows[1].capture_ts, rows[3].capture_ts
    done = _cli("archive", "export", str(path), "--since", repr(since), "--until", repr(until), "--out",
                str(tmp_path / "range.zip"))
    assert done.returncode == 0 and "exported 3 frame(s)" in done.stdout, done.stderr
    with zipfile.ZipFile(tmp_path / "range.zip") as bundle:
        bundle.extractall(tmp_path / "unzipped")
    exported = ArchiveReader(tmp_path / "unzipped")
    assert [r.frame_index for r in exported.frames()] == [1, 2, 3]
    assert all(exported.image(r).shape == (32, 32, 3) for r in exported.frames())
    bad = _cli("archive", "export", str(path), "--since", "yesterday", "--out", str(tmp_path / "x.zip"))
    assert bad.returncode == 2 and "neither an ISO 8601 time" in bad.stderr
