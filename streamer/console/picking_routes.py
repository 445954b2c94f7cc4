"""Picking the product in the console: freeze a frame, click an object, preview its mask, apply, undo, upload.

Every support change goes through the processor's `replace_support`, the same path as the control socket's
set_support, so validation and the prototype cache are shared. One change at a time: a second browser that
applies while another change is under way gets a clear refusal, and nothing is applied half-way.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from streamer.console.common import SupportBusy, read_json
from streamer.console.frozen import FrozenFrames
from streamer.console.picture import product_colour
from streamer.console.product_routes import product_routes
from streamer.stream.messages import encode_jpeg
from streamer.errors import UserError
from streamer.memory import trim_memory
from streamer.persense.pick import Pick, pick_object
from streamer.persense.products import check_product_name
from streamer.pick_checks import background_warning
from streamer.stream.notes import kind_at
from streamer.stream.support import support_from_bytes
from streamer.stream.support_history import support_crop

_THUMBNAIL_PX = 240
_TINT = np.array([255, 64, 200], np.float32)  # the preview's mask colour: magenta stands out on belts


def picking_routes(backend, options, camera_of, frozen_frames: FrozenFrames | None = None) -> list[Route]:
    frozen_frames = frozen_frames if frozen_frames is not None else FrozenFrames()
    changing = threading.Lock()
    max_upload = options.max_upload_bytes if options is not None else 16 * 1024 * 1024
    decoding = threading.Lock()
    upload_wait_s = options.upload_wait_s if options is not None else 30.0

    def exclusive(change):
        """change() unless another change is under way (SupportBusy, and nothing changes)."""
        if not changing.acquire(blocking=False):
            raise SupportBusy("another support change is being applied right now; nothing was changed — try again "
                              "in a moment")
        try:
            return change()
        finally:
            changing.release()

    def change_support(change) -> dict:
        """Runs `change()` (which replaces the support) unless another change is under way."""
        return {"ok": True, "support_id": exclusive(change).support_id}

    def decode_and_apply(image_data: bytes, mask_data: bytes, camera: str | None, named: dict) -> dict:
        """Decodes an upload only in its turn: parallel uploads of large images each decoded at once held
        gigabytes together, so one decodes at a time and the others wait (up to upload_wait_s) before decoding."""
        if not decoding.acquire(timeout=upload_wait_s):
            raise SupportBusy("other uploads are being decoded right now; nothing was changed — try again in a "
                              "moment")
        def apply() -> dict:  # its own scope: the decoded arrays are freed when it returns
            image, mask = support_from_bytes(image_data, mask_data, backend.max_image_pixels,
                                             getattr(backend, "max_image_bytes", None))
            return change_support(lambda: backend.replace_support(image, mask, camera=camera, **named))

        try:
            return apply()
        finally:
            trim_memory()  # the decoded upload's memory back to the system before the next upload decodes
            decoding.release()

    async def freeze(request: Request) -> JSONResponse:
        camera = camera_of(request)
        shown = backend.live.latest(camera)
        if shown is None:
            raise UserError(f"camera {camera} has no frame yet")
        frozen = frozen_frames.add(camera, int(shown.frame.index), shown.frame.image,
                                   scene=getattr(shown.frame, "truth_scene", None))
        h, w = frozen.image.shape[:2]
        return JSONResponse({"ok": True, "freeze_id": frozen.freeze_id, "frame_index": frozen.frame_index,
                             "width": w, "height": h, "image": f"/api/frozen/{frozen.freeze_id}.jpg"})

    async def frozen_image(request: Request) -> Response:
        frozen = frozen_frames.get(request.path_params["freeze_id"])
        return Response(await run_in_threadpool(encode_jpeg, frozen.image, 90), media_type="image/jpeg")

    async def pick(request: Request) -> JSONResponse:
        body = await read_json(request)
        frozen = frozen_frames.get(str(body.get("freeze_id", "")))
        point = _point(body)
        persense = backend.persense

        def work() -> Pick:
            # On the pipeline's thread: the engines are not shared with a frame in flight.
            with frozen.lock:
                if frozen.embedding is None:
                    frozen.embedding = persense.encode(frozen.image).embedding
                embedding = frozen.embedding
            return pick_object(persense.engines, frozen.image, point, embedding)

        found = await run_in_threadpool(backend.on_pipeline, work)
        pick_id = frozen.add_pick(found)
        x0, y0, x1, y1 = found.bbox
        background = await run_in_threadpool(background_warning, frozen.image, found.mask)
        warning = "; ".join(w for w in (background, found.warning) if w) or None
        return JSONResponse({
            "ok": True, "pick_id": pick_id, "area": found.area, "score": round(found.score, 3),
            "bbox": [x0, y0, x1, y1], "warning": warning, "summary": _summary(found),
            "preview": f"/api/frozen/{frozen.freeze_id}/picks/{pick_id}.jpg",
        })

    async def pick_preview(request: Request) -> Response:
        frozen = frozen_frames.get(request.path_params["freeze_id"])
        found = frozen.pick(request.path_params["pick_id"])
        return Response(await run_in_threadpool(_preview, frozen.image, found.mask), media_type="image/jpeg")

    def camera_named(value) -> str | None:
        """An optional "camera" of a request: None (every camera), or one of the processor's camera ids."""
        if value is None or value == "":
            return None
        if not isinstance(value, str) or value not in backend.cameras:
            raise UserError(f"no camera {str(value)[:64]!r}; cameras: {', '.join(backend.cameras)}")
        return value

    def product_named(value) -> dict:
        """An optional "product" of a request -> {"product": NAME}, or {} for the default one."""
        return {"product": check_product_name(value)} if value else {}

    async def apply(request: Request) -> JSONResponse:
        body = await read_json(request)
        frozen = frozen_frames.get(str(body.get("freeze_id", "")))
        found = frozen.pick(str(body.get("pick_id", "")))
        camera = camera_named(body.get("camera"))
        # On the simulator, which kind of its objects was picked: the results then carry that kind's truth.
        kind = kind_at(frozen.scene, found.mask)
        known = {"truth_kind": kind} if kind else {}
        known |= product_named(body.get("product"))  # one of the camera's products (docs/products.md)
        reply = await run_in_threadpool(change_support, lambda: backend.replace_support(frozen.image, found.mask,
                                                                                        camera=camera, **known))
        return JSONResponse(reply)

    async def undo(request: Request) -> JSONResponse:
        # An optional body {"camera": ID}: undo that camera's last change only.
        body = await read_json(request) if request.headers.get("content-length", "0") != "0" else {}
        camera = camera_named(body.get("camera"))

        named = product_named(body.get("product"))

        def go_back():
            previous = backend.supports_of(camera, **named).previous()
            if previous is None:
                raise UserError("nothing to undo: this is the first support")
            return backend.replace_support(previous.image, previous.mask, undoing=True, camera=camera, **named)

        return JSONResponse(await run_in_threadpool(change_support, go_back))

    async def upload(request: Request) -> JSONResponse:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_upload:
            raise UserError(f"the upload is {int(declared)} bytes; the limit is {max_upload} "
                            "(stream.console.max_upload_bytes)")
        bounded = Request(request.scope, _bounded_receive(request.receive, max_upload))
        async with bounded.form(max_files=2, max_fields=3, max_part_size=max_upload) as form:
            image_file, mask_file = form.get("image"), form.get("mask")
            if not hasattr(image_file, "read") or not hasattr(mask_file, "read"):
                raise UserError("upload two files: 'image' (the example) and 'mask' (its object's pixels non-zero)")
            camera = camera_named(form.get("camera"))  # an optional field: that camera's product only
            named = product_named(form.get("product"))  # an optional field: that product (else the default one)
            image_data, mask_data = await image_file.read(), await mask_file.read()
        return JSONResponse(await run_in_threadpool(decode_and_apply, image_data, mask_data, camera, named))

    async def support_thumbnail(request: Request) -> Response:
        # An optional query camera=ID: that camera's support (a product per camera), else every camera's; and
        # product=NAME: that product's (else the default one's).
        query = request.query_params
        current = backend.supports_of(camera_named(query.get("camera")), **product_named(query.get("product"))).current()
        if current is None:
            raise UserError("no support yet")
        colour = product_colour(current.support_id)
        packed = current.packed  # its preview (the product's crop): the full image is kept only compressed
        return Response(await run_in_threadpool(_thumbnail, packed.preview, packed.preview_mask, colour),
                        media_type="image/jpeg",
                        headers={"Cache-Control": "no-store"})

    return [
        Route("/api/cameras/{camera}/freeze", freeze, methods=["POST"]),
        Route("/api/frozen/{freeze_id}.jpg", frozen_image),
        Route("/api/frozen/{freeze_id}/picks/{pick_id}.jpg", pick_preview),
        Route("/api/pick", pick, methods=["POST"]),
        Route("/api/support/apply", apply, methods=["POST"]),
        Route("/api/support/undo", undo, methods=["POST"]),
        Route("/api/support/upload", upload, methods=["POST"]),
        Route("/api/support.jpg", support_thumbnail),
        *(product_routes(backend, frozen_frames, exclusive, camera_named) if hasattr(backend, "add_product") else []),
    ]


def _summary(found: Pick) -> str:
    """The pick in words an operator reads at a glance (not "2108 px, score 0.823")."""
    x0, y0, x1, y1 = found.bbox
    sure = "sure" if found.score >= 0.8 else "fairly sure" if found.score >= 0.5 else "unsure"
    return f"an object about {x1 - x0} x {y1 - y0} pixels; the outline finder is {sure} of its edge"


def _point(body: dict) -> tuple[float, float]:
    x, y = body.get("x"), body.get("y")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in (x, y)):
        raise UserError('a pick needs numbers "x" and "y" (pixels of the frozen frame)')
    return float(x), float(y)


def _bounded_receive(receive, limit: int):
    seen = 0

    async def bounded():
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > limit:
            raise UserError(f"the upload exceeds {limit} bytes (stream.console.max_upload_bytes)")
        return message

    return bounded


def _tinted(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = image.copy()
    out[mask] = (out[mask] * 0.45 + _TINT * 0.55).astype(np.uint8)
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(out, contours, -1, (255, 255, 255), 2)
    return out


def _preview(image: np.ndarray, mask: np.ndarray) -> bytes:
    return encode_jpeg(_tinted(image, mask), 90)


def _thumbnail(image: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int] = (255, 255, 255)) -> bytes:
    """The support as a crop of its product, outlined in the product's colour, scaled to _THUMBNAIL_PX."""
    crop, crop_mask = support_crop(image, np.asarray(mask, bool))
    scale = _THUMBNAIL_PX / max(crop.shape[:2])
    size = (max(int(round(crop.shape[1] * scale)), 1), max(int(round(crop.shape[0] * scale)), 1))
    out = cv2.resize(crop, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    # The outline is found on the scaled mask, so that it is as thin on a small product as on a large one.
    scaled_mask = cv2.resize(crop_mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(scaled_mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(out, contours, -1, colour, 2)
    return encode_jpeg(out)
