"""The console's routes: the page, the live view, the figures, pause/resume and download.

Picking and applying a support are in streamer.console.picking_routes. Every handler that touches images
or the pipeline runs in a worker thread (run_in_threadpool), so the event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import io
import json
import zipfile

import cv2
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from streamer.console.archive_routes import archive_routes
from streamer.console.common import STATIC
from streamer.console.frozen import FrozenFrames
from streamer.console.live import LiveView, ViewersFull
from streamer.console.picking_routes import picking_routes
from streamer.console.picture import check_style, hex_colour, product_colour, product_colours
from streamer.console.states import view_state
from streamer.errors import UserError
from streamer.render import overlay
from streamer.schema import result_to_dict
from streamer.stream.messages import encode_jpeg

BOUNDARY = "persense-frame"


def console_routes(backend, options) -> list[Route]:
    live: LiveView = backend.live
    frozen_frames = FrozenFrames()  # the live frames and the archived ones an operator picks from
    max_fps = options.max_fps if options is not None else 10.0

    def camera_of(request: Request) -> str:
        camera = request.path_params["camera"]
        if camera not in backend.cameras:
            raise UserError(f"no camera {camera[:64]!r}; cameras: {', '.join(backend.cameras)}")
        return camera

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def status(request: Request) -> JSONResponse:
        statuses = backend.camera_statuses()
        presence_level = getattr(backend, "presence_level", None)
        items_of = getattr(backend, "items_of", None)
        cameras = {}
        for camera in backend.cameras:
            status, figures = statuses.get(camera, {}), live.figures(camera)
            several = status.get("products", ())
            for product, colour in zip(several, product_colours([p["name"] for p in several]).values()):
                if len(several) > 1:
                    product["colour"] = hex_colour(colour)  # as the live view draws it
            cameras[camera] = {**status, **figures, **view_state(status, figures, presence_level),
                               "product_colour": hex_colour(product_colour(status.get("support_id"))),
                               **(items_of(camera) if items_of else {}),
                               "can_undo": backend.supports_of(camera).previous() is not None}
        current = backend.supports.current()
        return JSONResponse({
            "ok": True,
            "paused": backend.is_paused(),
            "support_id": current.support_id if current else None,
            "can_undo": backend.supports.previous() is not None,
            "engines": backend.persense.engines.name,
            "watchers": live.watchers,
            "max_fps": max_fps,
            "cameras": cameras,
        })

    render_locks: dict[tuple[str, str], asyncio.Lock] = {}

    async def live_stream(request: Request) -> Response:
        camera = camera_of(request)
        style = check_style(request.query_params.get("style", "outline"))
        try:
            live.reserve()  # here, before answering: the place is taken or the answer is 503
        except ViewersFull as exc:
            return JSONResponse({"ok": False, "error": str(exc)}, 503, headers={"Retry-After": "5"})

        async def frames():
            period = 1.0 / max_fps
            last = None
            while not live.closed.is_set():
                item = live.cached(camera, style)
                if item is None:
                    # One render per result and style for all viewers: the others wait here, not in threads.
                    async with render_locks.setdefault((camera, style), asyncio.Lock()):
                        item = live.cached(camera, style) or await run_in_threadpool(live.jpeg, camera, style)
                if item is not None and item[1] is not last:
                    last = item[1]
                    yield (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(last)}\r\n"
                           f"X-Frame-Index: {item[0]}\r\n\r\n").encode() + last + b"\r\n"
                await asyncio.sleep(period)

        return _Viewing(frames(), live.release, media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                        headers={"Cache-Control": "no-store"})

    async def download(request: Request) -> Response:
        camera = camera_of(request)
        shown = live.latest(camera)
        if shown is None:
            raise UserError(f"camera {camera} has no result yet")
        data = await run_in_threadpool(_bundle, shown)
        name = f"persense-{camera}-{shown.frame.index}.zip"
        return Response(data, media_type="application/zip",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    async def pause(request: Request) -> JSONResponse:
        backend.pause()
        return JSONResponse({"ok": True, "paused": True})

    async def resume(request: Request) -> JSONResponse:
        backend.resume()
        return JSONResponse({"ok": True, "paused": False})

    return [
        Route("/", index),
        Route("/api/status", status),
        Route("/api/cameras/{camera}/live.mjpg", live_stream),
        Route("/api/cameras/{camera}/download", download),
        Route("/api/pause", pause, methods=["POST"]),
        Route("/api/resume", resume, methods=["POST"]),
        *picking_routes(backend, options, camera_of, frozen_frames),
        *archive_routes(backend, frozen_frames),
    ]


class _Viewing(StreamingResponse):
    """A live stream that gives its viewer's place back however it ends (also when the client left before
    the first frame, when the stream's generator never started and its own cleanup would not run)."""

    def __init__(self, content, release, **kwargs):
        super().__init__(content, **kwargs)
        self._release = release

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


def _bundle(shown) -> bytes:
    """The shown frame as a zip: frame.png (as captured), overlay.jpg (as drawn), result.json (persense.result/1)."""
    frame = shown.frame
    ok, png = cv2.imencode(".png", cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    # The truth where the bus has it (the simulator's count of the product in force), as in the published header.
    truth = {} if frame.truth_count is None else {"truth_count": int(frame.truth_count)}
    doc = result_to_dict(shown.result, camera=frame.camera, frame_index=int(frame.index),
                         capture_ts=round(float(frame.capture_ts), 6), support_id=shown.support_id, **truth)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("frame.png", png.tobytes())
        bundle.writestr("overlay.jpg", encode_jpeg(overlay(frame.image, shown.result)))
        bundle.writestr("result.json", json.dumps(doc))
    return buffer.getvalue()
