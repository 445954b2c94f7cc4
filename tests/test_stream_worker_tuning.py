"""How the worker processes share the machine (`stream.workers` above 1): OpenCV's threads in each worker, and a
reply pipe that takes a whole result in one write (docs/performance.md, 13)."""

from __future__ import annotations

import fcntl
import queue

import cv2
import pytest

from streamer.config import PipelineConfig
from streamer.product_config import GateConfig
from streamer.stream.lanes import FAILED_START, ProcessLane, ReplicaRecipe
from streamer.stream.worker_choice import machine_cores, worker_opencv_threads


def _tell_opencv_threads():
    """An engine factory that tells, through the worker's failed start, how many threads OpenCV has there."""
    raise RuntimeError(f"opencv threads {cv2.getNumThreads()}")


def test_the_workers_share_the_cores_among_them_unless_told():
    cores = machine_cores()
    assert worker_opencv_threads(None, 1) == cores
    assert worker_opencv_threads(None, cores) == 1
    assert worker_opencv_threads(None, 4 * cores) == 1  # never none
    assert worker_opencv_threads(3, 2) == 3


@pytest.mark.parametrize("threads", [1, 3])
def test_a_worker_process_runs_opencv_with_the_threads_it_is_given(threads):
    results: queue.SimpleQueue = queue.SimpleQueue()
    recipe = ReplicaRecipe(_tell_opencv_threads, PipelineConfig(), {"c": GateConfig()})
    lane = ProcessLane(0, recipe, results, opencv_threads=threads)
    lane.start()
    try:
        index, kind, why = results.get(timeout=60)
    finally:
        lane.stop(10)
    assert (index, kind) == (0, FAILED_START) and why.endswith(f"opencv threads {threads}")


def test_a_worker_process_reply_pipe_holds_a_whole_result():
    with open("/proc/sys/fs/pipe-max-size") as limit:
        most = int(limit.read())
    lane = ProcessLane(0, ReplicaRecipe(_tell_opencv_threads, PipelineConfig(), {"c": GateConfig()}),
                       queue.SimpleQueue())
    try:
        # A 60-object result pickles to about 140 kB; Linux's pipes hold 64 kB unless widened.
        assert fcntl.fcntl(lane._replies.fileno(), fcntl.F_GETPIPE_SZ) >= min(1 << 20, most)
    finally:
        lane.stop(1)
