"""Which worker the stream runs (`stream.workers`): one inference thread, or several workers with results in order."""

from __future__ import annotations

import logging
import os
from functools import partial
from typing import Callable

from engines.interfaces import EngineSet
from streamer.config import Config
from streamer.errors import UserError
from streamer.stream.ahead import encode_ahead_enabled
from streamer.stream.config import MAX_WORKERS

log = logging.getLogger(__name__)


def machine_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def resolved_workers(setting: int | None, encoder) -> int:
    """`stream.workers`: the number given, or (null) the machine's cores, at most MAX_WORKERS, where the encoder
    runs on the CPU; 1 where it runs on a GPU (each worker would hold its own copy of the models in the GPU's
    memory; there, frames of several cameras are batched instead)."""
    if setting is not None:
        return setting
    if getattr(encoder, "device", "cpu") == "cuda":
        return 1
    return max(1, min(machine_cores(), MAX_WORKERS))


def resolved_product_threads(setting: int | None) -> int:
    """`stream.product_threads`: the number given, or (null) the cores this process may run on.

    A camera with several products runs on the one inference worker (build_worker), so its products' threads and
    OpenCV's pool share this process's cores: more threads than cores would only take turns. Each camera's
    Products uses at most as many as it has products; the threads run only where the engines allow it
    (EngineSet.products_side_by_side)."""
    if setting is not None:
        return setting
    return machine_cores()


def build_worker(config: Config, products, slots, sink, metrics, engine_factory: Callable[[], EngineSet] | None):
    """The stream's worker for `config.stream.workers`: InferenceWorker for one, ParallelWorker for more.

    products: streamer.stream.products.CameraProducts, whose pipelines hold the supports in force.
    engine_factory: a picklable zero-argument callable that builds the workers' engines; None: copies of the
        products' engines (UserError where they cannot be copied).
    """
    from streamer.stream.worker import InferenceWorker

    stream = config.stream
    workers = resolved_workers(stream.workers, products.engines.encoder)
    several = [camera for camera in products.cameras if _several(products.pipeline(camera))]
    if several and workers > 1:
        # The workers' replicas hold each camera's one product (streamer.stream.lanes).
        if stream.workers is not None:
            raise UserError(f"stream.workers: {workers} segments one product per camera, without negative "
                            f"examples; camera {several[0]} has several products or negatives: set stream.workers: 1")
        log.info("camera %s counts several products or has negative examples: one worker", several[0])
        workers = 1
    if workers == 1:
        ahead = encode_ahead_enabled(stream.encode_ahead, products.engines.encoder)
        if ahead and stream.batch_frames > 1:
            log.info("stream.batch_frames: frames are encoded in batches, not ahead (stream.encode_ahead)")
            ahead = False
        return InferenceWorker(products.pipeline, slots, sink, metrics, encode_ahead=ahead,
                               batch_frames=stream.batch_frames, batch_wait_s=stream.batch_wait_ms / 1e3)
    from streamer.stream.lanes import EngineCopy, ProcessLane, ReplicaRecipe, ThreadLane
    from streamer.stream.parallel import ParallelWorker

    if stream.encode_ahead:
        log.info("stream.encode_ahead applies with one worker; %d workers segment frames side by side instead",
                 workers)
    gates = {source.camera_id: source.gate or config.gate for source in stream.sources}
    recipe = ReplicaRecipe(engine_factory or EngineCopy(products.engines), config.pipeline, gates)
    if stream.worker_threads:
        log.info("%d workers (threads)", workers)
        make_lane = partial(ThreadLane, recipe=recipe)
    else:
        opencv_threads = worker_opencv_threads(stream.worker_opencv_threads, workers)
        log.info("%d workers (processes, %d OpenCV thread(s) each)", workers, opencv_threads)
        make_lane = partial(ProcessLane, recipe=recipe, opencv_threads=opencv_threads)
    return ParallelWorker(products.pipeline, products.cameras, slots, sink, metrics,
                          lambda index, results: make_lane(index, results=results), workers)


def worker_opencv_threads(setting: int | None, workers: int) -> int:
    """`stream.worker_opencv_threads`: the number given, or (null) the machine's cores shared out among the workers.

    Each process's OpenCV otherwise runs a pool of one thread per core: two workers on 2 cores ran 4 threads where
    2 can run. Not a measured optimum: its effect was within the noise while other sessions held this machine's
    cores (docs/performance.md, 13); a setting overrides it."""
    if setting is not None:
        return setting
    return max(1, machine_cores() // workers)


def _several(pipeline) -> bool:
    """Whether a camera's pipeline (streamer.persense.products.Products, or one PerSense) counts several products
    or has negative examples."""
    if not hasattr(pipeline, "several"):  # one PerSense
        return bool(getattr(pipeline, "negatives", ()))
    return pipeline.several or any(pipeline.product(name).negatives for name in pipeline.names)
