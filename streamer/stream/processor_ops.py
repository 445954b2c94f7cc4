"""The running processor's state and the requests it serves: status for the bus, the probes and the console;
the control socket's commands; pause, resume and support changes, which control and the console share.

A mixin of StreamProcessor (streamer.stream.processor), kept apart so that each file reads in one sitting.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

import numpy as np

from streamer.errors import UserError
from streamer.persense.pipeline import PerSense
from streamer.sources.base import SourceState
from streamer.stream.metrics import SourceSnapshot
from streamer.stream.product_ops import ProductOperations
from streamer.memory import trim_memory
from streamer.stream.support_history import SupportHistory, pack

log = logging.getLogger("streamer.stream.processor")


class ProcessorOperations(ProductOperations):
    """Needs of its class: cameras, stream, products, supervisors, worker, publisher, http, started_at, truth,
    tally, live, archive, outputs."""

    @property
    def persense(self) -> PerSense:
        """The first camera's pipeline: its engines pick objects for the console."""
        return self.products.pipeline(self.cameras[0])

    @property
    def supports(self) -> SupportHistory:
        """The first camera's supports, newest last (the console's Undo)."""
        return self.products.histories[self.cameras[0]]

    def supports_of(self, camera: str | None, product: str | None = None) -> SupportHistory:
        """`camera`'s supports of its `product`, newest last (None: the first camera's; its default product)."""
        camera = self.cameras[0] if camera is None else self.products.check_camera(camera)
        return self.products.history(camera, product)

    # -- state ---------------------------------------------------------------------------------------
    def _on_state(self, camera: str, state: SourceState, reason: str = "") -> None:
        # Called from the camera's thread while its supervisor holds its lock: only queue the message.
        if self.publisher is not None:
            status = self._camera_status(camera)
            status["state"] = getattr(state, "value", str(state))
            self.publisher.submit_status(camera, {"event": "state", "reason": reason, **status})

    def _source_snapshots(self) -> list[SourceSnapshot]:
        now = time.monotonic()
        snaps = []
        for camera, sup in list(self.supervisors.items()):
            last = getattr(sup, "last_frame_monotonic", None)
            snaps.append(SourceSnapshot(camera, sup.state == SourceState.STREAMING, int(sup.reconnects),
                                        None if last is None else max(now - last, 0.0)))
        return snaps

    def _camera_status(self, camera: str) -> dict:
        sup = self.supervisors.get(camera)
        worker = self.worker
        last = getattr(sup, "last_frame_monotonic", None) if sup else None
        return {
            "state": getattr(sup.state, "value", str(sup.state)) if sup else "starting",
            "reconnects": int(sup.reconnects) if sup else 0,
            "last_frame_age_s": None if last is None else round(time.monotonic() - last, 3),
            "processed": worker.processed.get(camera, 0) if worker else 0,
            "failed": worker.failed.get(camera, 0) if worker else 0,
            "published": self.publisher.seq.get(camera, 0) if self.publisher else 0,
            "last_count": worker.last_count.get(camera) if worker else None,
            "paused": bool(worker and worker.paused.is_set()),
            "support_id": self.products.support_id(camera),
            "label": self.products.label(camera),
            "warnings": list(getattr(self.products.pipeline(camera).support, "warnings", ()) or ()),
            **self.products_status(camera),
            # Where the archive is on: whether it writes (a full or unwritable disk shows here), and its size.
            **({"archive": self.archive.status()} if self.archive is not None else {}),
        }

    def camera_statuses(self) -> dict[str, dict]:
        return {camera: self._camera_status(camera) for camera in self.cameras}

    def health(self) -> tuple[bool, dict]:
        threads = {"inference": self.worker, "publisher": self.publisher, "control": self.control, "http": self.http,
                   "console": self.console_http, "archive": self.archive}
        alive = {name: part.alive() for name, part in threads.items() if part is not None and hasattr(part, "alive")}
        if self.outputs is not None:
            alive.update(self.outputs.alive())
        return all(alive.values()), {"threads": alive}

    def readiness(self) -> tuple[bool, dict]:
        alive, _ = self.health()
        states = {c: getattr(s.state, "value", str(s.state)) for c, s in self.supervisors.items()}
        streaming = any(s.state == SourceState.STREAMING for s in self.supervisors.values())
        support = all(self.products.support_id(camera) is not None for camera in self.cameras)
        return alive and support and streaming, {"support": support, "cameras": states}

    # -- control commands (control thread) -----------------------------------------------------------
    def _cmd_status(self, request: dict, frames: list[bytes]) -> dict:
        return {
            "uptime_s": round(time.monotonic() - self.started_at, 3),
            "paused": self.is_paused(),
            "support_id": self.products.support_id(self.cameras[0]),  # the first camera's; each camera's below
            "label": self.products.label(self.cameras[0]),
            "engines": self.products.engines.name,
            "publish": self.publisher.endpoint if self.publisher else None,
            "metrics": self.http.url if self.http else None,
            "published": self.publisher.sent if self.publisher else 0,
            "cameras": self.camera_statuses(),
            "outputs": self.outputs.status() if self.outputs else {},
        }

    def _cmd_pause(self, request: dict, frames: list[bytes]) -> dict:
        self.pause()
        return {"paused": True}

    def _cmd_resume(self, request: dict, frames: list[bytes]) -> dict:
        self.resume()
        return {"paused": False}

    def _cmd_mark(self, request: dict, frames: list[bytes]) -> dict:
        camera = request.get("camera")
        if camera is not None:
            self.products.check_camera(camera)
        note = request.get("note", "")
        if not isinstance(note, str):
            raise UserError("mark: note must be a string")
        self.mark(camera, note)
        return {"marked": [camera] if camera is not None else self.cameras}

    def _cmd_set_support(self, request: dict, frames: list[bytes]) -> dict:
        if len(frames) != 2:
            raise UserError(f"set_support needs 2 binary frames after the JSON (image, mask), got {len(frames)}")
        camera, product = self._request_target(request)
        for name in self._cameras_for(camera):
            self.products.check_product(name, product)
        image, mask = self._images(frames)
        support = self.replace_support(image, mask, camera=camera, product=product)
        return {"support_id": support.support_id, "width": int(image.shape[1]), "height": int(image.shape[0]),
                "cameras": [camera] if camera is not None else self.cameras,
                **({"product": product} if product is not None else {})}

    # -- what control and the console share (any thread) ----------------------------------------------
    @property
    def presence_level(self) -> float | None:
        """The match quality under which a frame counts 0 (the product is not present); None: never."""
        return self.config.pipeline.presence_threshold

    def items_of(self, camera: str) -> dict:
        """Where items passing a line are counted: the camera's out-of-spec total and its last out-of-spec items
        (newest last); {} where nothing is counted."""
        if self.tally is None or camera not in self.tally.tallies:
            return {}
        return {"out_of_spec_total": self.tally.tallies[camera].out_of_spec_total,
                "out_of_spec_recent": list(self.tally.out_of_spec[camera])}

    @property
    def max_image_pixels(self) -> int:
        return self.stream.control.max_image_pixels

    @property
    def max_image_bytes(self) -> int:
        return self.stream.control.max_image_bytes

    def is_paused(self) -> bool:
        return bool(self.worker and self.worker.paused.is_set())

    def pause(self) -> None:
        self.worker.paused.set()
        self._announce("paused")
        self._audit("pause")

    def resume(self) -> None:
        self.worker.paused.clear()
        self._announce("resumed")
        self._audit("resume")

    def mark(self, camera: str | None = None, note: str = "") -> None:
        """Keep the next frame of `camera` (None: of every camera) in the archive, with the seconds around it."""
        if self.archive is None:
            raise UserError("the archive is off (stream.archive.enabled): there is nothing to mark frames in")
        self.archive.mark(camera, note)

    def _audit(self, action: str, camera: str | None = None, old: str | None = None, new: str | None = None) -> None:
        """An entry of the audit trail (index and bus) where the archive is on; who is the request's caller."""
        if self.archive is not None:
            self.archive.audit(action, camera, old, new)

    def on_pipeline(self, fn: Callable[[], object]) -> object:
        """fn() on the inference thread between frames (the engines are not thread-safe); its result or error."""
        try:
            return self.worker.call(fn, self.stream.control.timeout_s)
        except TimeoutError:
            raise UserError(f"the pipeline did not get to the request within {self.stream.control.timeout_s} s; "
                            "it will still run when the pipeline gets to it") from None

    def replace_support(self, image: np.ndarray, mask: np.ndarray, undoing: bool = False, camera: str | None = None,
                        truth_kind: str | None = None, product: str | None = None):
        """Make (uint8[H, W, 3] RGB image, bool[H, W] mask) the support of `camera` (None: of every camera) -> the
        new Support. The one path of control's set_support and the console; a bad support raises UserError and
        leaves the old one in force.

        undoing: going back to the history's previous support (Undo), so the current one leaves the history.
        truth_kind: which kind of the simulator's objects the support shows (streamer.stream.notes.kind_at), where
            known: the results then carry that kind's truth; a support of unknown kind gets none.
        product: which of the cameras' products it is the support of (docs/products.md); None: the default one.
        """
        cameras = self._cameras_for(camera)
        for name in cameras:
            self.products.check_product(name, product)
        old_ids = {name: self.products.support_id(name, product) for name in cameras}
        # Packed for the history here, in the caller's thread: packing a large image takes a moment that the
        # pipeline's thread (frames) must not wait for. An undo packs nothing (its record is kept already).
        packed = None if undoing else pack(image, mask)

        def change():
            # The history changes with the support, on the pipeline's thread: also when the caller timed out.
            # The first camera's check refuses a bad support before any camera has changed.
            for name in cameras:
                support = self.products.apply(name, image, mask, product)
                if truth_kind is not None:  # before this thread segments a frame with it
                    self.truth.note(support.support_id, truth_kind)
                if self.tally is not None:  # the camera's specs follow its default product; another's, its own
                    default = product in (None, self.products.pipeline(name).names[0])
                    self.tally.set_support(mask, name, product=None if default else product)
                history = self.products.history(name, product)
                if undoing:
                    history.drop_current()
                else:
                    history.push(image, mask, support.support_id, packed=packed)
            return support

        support = self.on_pipeline(change)
        trim_memory()  # a large support's decoding and learning buffers: not kept for the next upload's peak
        log.info("support replaced: %s (%s)", support.support_id, ", ".join(cameras))
        self._announce("support", cameras)
        if self.archive is not None:
            self.archive.note_support(support.support_id, image, mask)
            for name in cameras:
                self._audit("support", name, old_ids[name], support.support_id)
        return support

    def _announce(self, event: str, cameras: list[str] | None = None) -> None:
        for camera in cameras or self.cameras:
            self.publisher.submit_status(camera, {"event": event, **self._camera_status(camera)})
