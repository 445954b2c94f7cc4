"""The built-in conveyor simulator as a live camera: dense moving objects with an exact count per frame."""

from __future__ import annotations

import time

import numpy as np

from streamer.sources.base import Frame, SourceEnded, SourceError
from streamer.simulator import ConveyorSimulator
from streamer.simulator.flow import FlowSimulator
from streamer.sources.pacing import Pacer


class SimulatorSource:
    """Frames of streamer.simulator.ConveyorSimulator at a fixed rate, with Frame.truth_count set.

    Args:
        camera_id: stamped on every frame.
        width, height: frame size in pixels.
        objects: target objects in view; distractors: objects of another kind.
        speed: belt speed in pixels per frame.
        seed: the scene (same seed, same frames).
        fps: frames per second (<= 0: as fast as the consumer reads).
        frames: stop after this many frames (SourceEnded); None runs for ever.
        flow: new items enter on the left and leave on the right (streamer.simulator.flow), each frame with
            its exact per-item truth in Frame.truth; otherwise the same objects ride a loop.
        px_per_mm: the flow simulator's scale (the millimetres of its truth).
        shape: the products' shape (streamer.simulator.shapes.PRODUCT_SHAPES: ellipse, rod, bracket, tee, star,
            washer, or mixed); the default ellipse is the original simulator.
    """

    live = True

    def __init__(self, camera_id: str, *, width: int = 640, height: int = 480, objects: int = 60,
                 distractors: int = 8, speed: float = 4.0, seed: int = 0, fps: float = 30.0,
                 frames: int | None = None, flow: bool = False, px_per_mm: float = 1.0, shape: str = "ellipse"):
        self.camera_id = camera_id
        self.fps = fps
        self.frames = frames
        if flow:
            self.simulator = FlowSimulator(width, height, objects, distractors, speed, seed, px_per_mm, shape=shape)
        else:
            self.simulator = ConveyorSimulator(width, height, objects, distractors, speed, seed, shape=shape)
        self.flow = flow
        self._pacer = Pacer(fps)
        self._index = 0
        self._open = False

    @property
    def frame_period(self) -> float | None:
        """Seconds between frames (None when unpaced): a slow simulator is not a stalled camera."""
        return 1.0 / self.fps if self.fps and self.fps > 0 else None

    def support(self) -> tuple[np.ndarray, np.ndarray]:
        """-> (uint8[h, w, 3] RGB support image, bool[h, w] mask of one target object)."""
        return self.simulator.support()

    def open(self) -> None:
        self._open = True
        self._pacer = Pacer(self.fps)

    def read(self, timeout: float) -> Frame | None:
        if not self._open:
            raise SourceError("simulator is not open")
        if self.frames is not None and self._index >= self.frames:
            raise SourceEnded(f"simulator finished {self.frames} frames")
        if not self._pacer.wait(timeout):
            return None
        scene, truth = (self.simulator.frame(self._index) if self.flow
                        else (self.simulator.frame(self._index), None))
        frame = Frame(image=scene.image, index=self._index, capture_ts=time.time(), camera=self.camera_id,
                      truth_count=int(scene.count), truth=truth,
                      truth_kinds={"product": int(scene.count), "distractor": int(scene.distractor_count)},
                      truth_scene=scene)
        self._index += 1
        return frame

    def close(self) -> None:
        self._open = False
