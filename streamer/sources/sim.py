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
        out_of_spec: the flow simulator's fraction of items too small or too large (streamer.simulator.flow).
        shape: the products' shape (streamer.simulator.shapes.PRODUCT_SHAPES: ellipse, rod, bracket, tee, star,
            washer, or mixed); the default ellipse is the original simulator.
        mix: several products and a look-alike (streamer.simulator.mix.PRODUCTS_MIX) instead: Frame.truth_kinds
            counts each kind by name, truth_count the first product's.
    """

    live = True

    def __init__(self, camera_id: str, *, width: int = 640, height: int = 480, objects: int = 60,
                 distractors: int = 8, speed: float = 4.0, seed: int = 0, fps: float = 30.0,
                 frames: int | None = None, flow: bool = False, px_per_mm: float = 1.0, shape: str = "ellipse",
                 out_of_spec: float = 0.0, mix: bool = False):
        self.camera_id = camera_id
        self.frame_size = (width, height)  # known before the first frame (reject stations are checked against it)
        self.fps = fps
        self.frames = frames
        if mix:
            from streamer.simulator.mix import MixedConveyor

            self.simulator = MixedConveyor(width=width, height=height, n_objects=objects, speed_px=speed, seed=seed)
        elif flow:
            self.simulator = FlowSimulator(width, height, objects, distractors, speed, seed, px_per_mm, shape=shape,
                                           out_of_spec=out_of_spec)
        else:
            self.simulator = ConveyorSimulator(width, height, objects, distractors, speed, seed, shape=shape)
        self.flow = flow
        self.mix = mix
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

    def example(self, kind: str) -> tuple[np.ndarray, np.ndarray]:
        """The products mix's example of `kind` (uint8[h, w, 3] RGB, bool[h, w]); UserError where there is none."""
        from streamer.errors import UserError

        if not hasattr(self.simulator, "kinds"):
            raise UserError(f"sim: examples of a kind ({kind!r}) come from the products mix (sim:?scene=products)")
        try:
            return self.simulator.support(kind)
        except ValueError as exc:
            raise UserError(f"sim: {exc}") from None

    def open(self) -> None:
        self._open = True
        self._pacer = Pacer(self.fps)
        # The flowing belt's clock: frame i is exposed at start + i / fps (continuing the count after a reopen).
        self._start = time.monotonic() - self._index / self.fps if self.frame_period else 0.0
        self._start_wall = time.time() - (time.monotonic() - self._start)

    def _clocked_index(self, timeout: float) -> bool:
        """A flowing belt moves with time, not with its reader: like a camera, a reader that fell behind misses
        the frames it was late for (their indices are skipped), so that frame index and time stay in step (a
        reject's arrival is predicted from them). -> False if the next frame is not due within `timeout`."""
        now = time.monotonic()
        self._index = max(self._index, int((now - self._start) / self.frame_period))
        delay = self._start + self._index * self.frame_period - now
        if delay > timeout:
            time.sleep(max(timeout, 0.0))
            return False
        if delay > 0:
            time.sleep(delay)
        return True

    def read(self, timeout: float) -> Frame | None:
        if not self._open:
            raise SourceError("simulator is not open")
        if self.frames is not None and self._index >= self.frames:
            raise SourceEnded(f"simulator finished {self.frames} frames")
        clocked = self.flow and self.frame_period is not None
        if not (self._clocked_index(timeout) if clocked else self._pacer.wait(timeout)):
            return None
        if self.frames is not None and self._index >= self.frames:
            raise SourceEnded(f"simulator finished {self.frames} frames")
        scene, truth = (self.simulator.frame(self._index) if self.flow
                        else (self.simulator.frame(self._index), None))
        stamp = self._start_wall + self._index * self.frame_period if clocked else time.time()
        if self.mix:
            counts = scene.counts
            frame = Frame(image=scene.image, index=self._index, capture_ts=stamp, camera=self.camera_id,
                          truth_count=counts[self.simulator.products[0]], truth_kinds=dict(counts), truth_scene=scene)
        else:
            frame = Frame(image=scene.image, index=self._index, capture_ts=stamp, camera=self.camera_id,
                          truth_count=int(scene.count), truth=truth,
                          truth_kinds={"product": int(scene.count), "distractor": int(scene.distractor_count)},
                          truth_scene=scene)
        self._index += 1
        return frame

    def close(self) -> None:
        self._open = False
