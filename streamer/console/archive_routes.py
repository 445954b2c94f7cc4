"""The console's review page: the archive's frames, filtered; a frame with its masks and result; marking the live
frame; and picking the product from an archived frame, by the same pick path as a frozen live frame (the frame
joins the console's frozen frames, then /api/pick and /api/support/apply do the rest)."""

from __future__ import annotations

import threading

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from streamer.archive.reader import ArchiveReader, DamagedFrame
from streamer.console.common import STATIC, read_json
from streamer.console.frozen import FrozenFrames
from streamer.console.picture import check_style, draw, product_colour
from streamer.errors import UserError, first_line
from streamer.rle import decode
from streamer.stream.messages import encode_jpeg
from streamer.types import Instance, SegmentationResult

MAX_LISTED = 500
KINDS = ("rejects", "low_quality", "marked")


def result_from_doc(doc: dict) -> SegmentationResult:
    """A recorded result (the bus JSON, masks as RLE) -> a SegmentationResult to draw."""
    width, height = int(doc.get("width", 0)), int(doc.get("height", 0))
    instances = []
    for k, item in enumerate(doc.get("instances", [])):
        if "mask" not in item:
            continue
        x0, y0, x1, y1 = (int(v) for v in item["bbox"])
        full = decode(item["mask"])
        instances.append(Instance(k, float(item.get("score", 0.0)), (x0, y0, x1, y1), full[y0:y1, x0:x1]))
    return SegmentationResult(width, height, instances, match_quality=float(doc.get("match_quality", 0.0)))


def archive_routes(backend, frozen_frames: FrozenFrames) -> list[Route]:
    opened: dict[str, ArchiveReader] = {}
    opening = threading.Lock()

    def reader() -> ArchiveReader:
        archive = getattr(backend, "archive", None)
        if archive is None:
            raise UserError("the archive is off (stream.archive.enabled); nothing to review")
        with opening:
            if "reader" not in opened:
                opened["reader"] = ArchiveReader(archive.writer.path)
            return opened["reader"]

    async def page(request: Request) -> Response:
        return FileResponse(STATIC / "review.html", headers={"Cache-Control": "no-store"})

    async def frames(request: Request) -> JSONResponse:
        query = request.query_params
        kinds = tuple(k for k in query.get("kinds", "").split(",") if k)
        unknown = [k for k in kinds if k not in KINDS]
        if unknown:
            raise UserError(f"unknown filter {unknown[0][:32]!r}; filters: {', '.join(KINDS)}")
        camera = query.get("camera") or None
        rows = await run_in_threadpool(
            reader().frames, camera=camera, since=_number(query, "since"), until=_number(query, "until"),
            kinds=kinds, quality_below=_number(query, "quality_below"), after_id=int(_number(query, "after") or 0),
            limit=MAX_LISTED)
        return JSONResponse({"ok": True, "frames": [row.to_dict() for row in rows]})

    async def frame_image(request: Request) -> Response:
        style = check_style(request.query_params.get("style", "outline"))
        data = await run_in_threadpool(_rendered, reader(), int(request.path_params["frame_id"]), style)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    async def frame_result(request: Request) -> JSONResponse:
        row, doc = await run_in_threadpool(_read, reader(), int(request.path_params["frame_id"]), "result")
        for item in doc.get("instances", []):
            item.pop("mask", None)  # the picture shows them; the page needs the figures
        return JSONResponse({"ok": True, "frame": row.to_dict(), "result": doc})

    async def freeze_archived(request: Request) -> JSONResponse:
        row, image = await run_in_threadpool(_read, reader(), int(request.path_params["frame_id"]), "image")
        frozen = frozen_frames.add(row.camera, row.frame_index, image)
        h, w = image.shape[:2]
        return JSONResponse({"ok": True, "freeze_id": frozen.freeze_id, "frame_index": row.frame_index,
                             "width": w, "height": h, "image": f"/api/frozen/{frozen.freeze_id}.jpg"})

    async def mark(request: Request) -> JSONResponse:
        body = await read_json(request) if request.headers.get("content-length", "0") != "0" else {}
        camera = body.get("camera") or None
        if camera is not None and camera not in backend.cameras:
            raise UserError(f"no camera {str(camera)[:64]!r}; cameras: {', '.join(backend.cameras)}")
        note = body.get("note", "")
        if not isinstance(note, str):
            raise UserError("a mark's note must be text")
        await run_in_threadpool(backend.mark, camera, note)
        return JSONResponse({"ok": True, "marked": [camera] if camera else list(backend.cameras)})

    async def audit(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True, "audit": await run_in_threadpool(reader().audit, 200)})

    return [
        Route("/review", page),
        Route("/api/archive/frames", frames),
        Route("/api/archive/frames/{frame_id:int}.jpg", frame_image),
        Route("/api/archive/frames/{frame_id:int}", frame_result),
        Route("/api/archive/frames/{frame_id:int}/freeze", freeze_archived, methods=["POST"]),
        Route("/api/archive/mark", mark, methods=["POST"]),
        Route("/api/archive/audit", audit),
    ]


def _number(query, name: str) -> float | None:
    value = query.get(name)
    if value in (None, ""):
        return None
    try:
        number = float(value)
    except ValueError:
        raise UserError(f"{name} must be a number, got {value[:32]!r}") from None
    if not np.isfinite(number):
        raise UserError(f"{name} must be a finite number")
    return number


def _read(archive: ArchiveReader, frame_id: int, part: str):
    """-> (the frame's row, its image or result); a damaged frame is a UserError (one line)."""
    row = archive.frame(frame_id)
    try:
        return row, archive.image(row) if part == "image" else archive.result(row)
    except DamagedFrame as exc:
        raise UserError(f"frame {row.id} is damaged: {exc}") from None


def _rendered(archive: ArchiveReader, frame_id: int, style: str) -> bytes:
    row, image = _read(archive, frame_id, "image")
    _, doc = _read(archive, frame_id, "result")
    try:
        result = result_from_doc(doc)
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"frame {row.id}: its result cannot be drawn ({first_line(exc)})") from None
    return encode_jpeg(draw(image, result, product_colour(row.support_id), style), 90)
