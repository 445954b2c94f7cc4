"""A product per camera: each camera's own PerSense pipeline (its support and gate) over one shared engine set.

Cameras with the same engines share the loaded models: every pipeline here holds the same EngineSet and the same
encoder lock (the encoder is used by one thread at a time, whichever camera asks). A support that another camera
already uses is taken over without an encoder pass; otherwise the prototype cache on disk is asked first.
"""

from __future__ import annotations

import threading

import numpy as np

from engines.interfaces import EngineSet
from streamer.errors import UserError
from streamer.persense.pipeline import PerSense, Support, support_id_for
from streamer.stream.support import PrototypeCache, apply_support
from streamer.stream.support_history import DEFAULT_HISTORY_BYTES, SupportHistory


class CameraProducts:
    """Args:
        engines: the one engine set all cameras share.
        pipeline_config: the PerSense parameters (streamer.config.PipelineConfig), the same for every camera.
        gates: camera id -> its Gate (streamer.gates), in the cameras' order.
        cache: where prototypes are kept between runs.
        labeler: the class-label extractor (one model, shared), or None.
        labels: camera id -> the object's configured name (support.label), or None where the labeler names it.
    """

    def __init__(self, engines: EngineSet, pipeline_config, gates: dict, cache: PrototypeCache,
                 labeler=None, labels: dict[str, str | None] | None = None, history_bytes: int = DEFAULT_HISTORY_BYTES):
        self.engines = engines
        self.cache = cache
        encoder_lock = threading.Lock()
        labels = labels or {}
        self.pipelines = {
            camera: PerSense(engines, pipeline_config, gate, labeler=labeler, label=labels.get(camera),
                             encoder_lock=encoder_lock)
            for camera, gate in gates.items()
        }
        self.histories = {camera: SupportHistory(max_bytes=history_bytes) for camera in gates}

    @property
    def cameras(self) -> list[str]:
        return list(self.pipelines)

    def pipeline(self, camera: str) -> PerSense:
        return self.pipelines[camera]

    def check_camera(self, camera: str) -> str:
        """The camera id when this processor has it, else UserError naming the ones it has."""
        if camera not in self.pipelines:
            raise UserError(f"unknown camera {str(camera)[:64]!r}; cameras: {', '.join(self.pipelines)}")
        return camera

    def support_id(self, camera: str) -> str | None:
        support = self.pipelines[camera].support
        return support.support_id if support else None

    def label(self, camera: str) -> str | None:
        support = self.pipelines[camera].support
        return support.label if support else None

    def apply(self, camera: str, image: np.ndarray, mask: np.ndarray) -> Support:
        """Make (uint8[H, W, 3] RGB, bool[H, W]) `camera`'s support (on the thread that runs its pipeline) -> it.
        UserError for a bad support, which leaves the old one in force."""
        pipeline = self.pipelines[camera]
        mask = np.asarray(mask, dtype=bool)  # no copy of a mask that is bool already
        wanted = support_id_for(image, mask, self.engines.name)
        for other in self.pipelines.values():
            if other is not pipeline and other.support is not None and other.support.support_id == wanted:
                return pipeline.set_support(image, mask, prototype=other.support.prototype,
                                            calibration=other.support.calibration, label=other.support.label)
        return apply_support(pipeline, image, mask, self.cache)
