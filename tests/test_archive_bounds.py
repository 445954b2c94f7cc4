"""The archive's size limit under `persense run`: a short run of benchmarks/archive_bounds.py (the 10-minute run and
the frame-rate ratio are that benchmark's: `python benchmarks/archive_bounds.py --minutes 10 --max-mb 50`)."""

from __future__ import annotations

import pytest

from benchmarks.archive_bounds import measure


@pytest.mark.slow
def test_a_run_keeping_every_frame_never_passes_the_limit(tmp_path):
    # 3 MB holds ~30 frames: in 20 s at a few frames/s the archive fills and removes its oldest frames many times.
    figures = measure(20, 3, "sim:?objects=60&fps=30", tmp_path)
    print(figures)  # the frame-rate ratio is reported, not asserted: it is a timing
    assert figures["samples"] >= 15
    assert figures["max_disk_bytes"] <= figures["limit_bytes"], figures
    assert figures["final_disk_bytes"] <= figures["limit_bytes"], figures
    assert figures["frames_with_archive"] > 0 and figures["exit_codes"] == {"archive": 0, "none": 0}
    assert figures["max_disk_bytes"] > figures["limit_bytes"] // 2  # it did fill up: the limit was exercised
