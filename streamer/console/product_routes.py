"""Several products and negative examples in the console (docs/products.md): a picked object becomes a new product,
or a "not this" example of one; the negatives can be cleared and an added product removed. Each change goes
through the processor's operations (streamer.stream.product_ops), the same path as the control socket's, one change
at a time (the picking routes' `change`)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from streamer.console.common import read_json
from streamer.console.frozen import FrozenFrames
from streamer.persense.products import check_product_name
from streamer.stream.notes import kind_at


def product_routes(backend, frozen_frames: FrozenFrames, change, camera_named) -> list[Route]:
    """change(fn) -> fn() (a change of the products), unless another change is under way (SupportBusy);
    camera_named(value) -> a camera id, or None (every camera)."""

    def picked(body: dict):
        frozen = frozen_frames.get(str(body.get("freeze_id", "")))
        return frozen, frozen.pick(str(body.get("pick_id", "")))

    def product_named(value) -> str | None:
        if value is None or value == "":
            return None
        return check_product_name(value)

    async def add_product(request: Request) -> JSONResponse:
        body = await read_json(request)
        frozen, found = picked(body)
        name = check_product_name(body.get("name"))
        camera = camera_named(body.get("camera"))
        # On the simulator, which kind of its objects was picked: the product's figures then carry its truth.
        kind = kind_at(frozen.scene, found.mask)

        def add():
            return backend.add_product(name, frozen.image, found.mask, camera=camera, truth_kind=kind)

        support = await run_in_threadpool(change, add)
        return JSONResponse({"ok": True, "product": name, "support_id": support.support_id})

    async def remove_product(request: Request) -> JSONResponse:
        body = await read_json(request)
        name = check_product_name(body.get("name"))
        camera = camera_named(body.get("camera"))
        await run_in_threadpool(change, lambda: backend.remove_product(name, camera=camera))
        return JSONResponse({"ok": True, "product": name})

    async def add_negative(request: Request) -> JSONResponse:
        body = await read_json(request)
        frozen, found = picked(body)
        product, camera = product_named(body.get("product")), camera_named(body.get("camera"))
        negative_id = await run_in_threadpool(
            change, lambda: backend.add_negative(frozen.image, found.mask, camera=camera, product=product))
        return JSONResponse({"ok": True, "negative_id": negative_id})

    async def clear_negatives(request: Request) -> JSONResponse:
        body = await read_json(request)
        product, camera = product_named(body.get("product")), camera_named(body.get("camera"))
        cleared = await run_in_threadpool(change, lambda: backend.clear_negatives(camera=camera, product=product))
        return JSONResponse({"ok": True, "cleared": cleared})

    return [
        Route("/api/products/add", add_product, methods=["POST"]),
        Route("/api/products/remove", remove_product, methods=["POST"]),
        Route("/api/negatives/add", add_negative, methods=["POST"]),
        Route("/api/negatives/clear", clear_negatives, methods=["POST"]),
    ]
