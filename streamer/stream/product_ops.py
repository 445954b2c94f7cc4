"""Several products per camera and their negative examples, in a running processor: the configured ones at start,
and the requests that change them (control's add_product, remove_product, add_negative, clear_negatives, and the
console's), each on the inference thread between frames. A refused request changes nothing on any camera.

A mixin of StreamProcessor (through streamer.stream.processor_ops.ProcessorOperations), kept apart so that each
file reads in one sitting.
"""

from __future__ import annotations

import logging

import numpy as np

from streamer.errors import UserError
from streamer.stream.support import support_from_bytes
from streamer.stream.support_history import pack

log = logging.getLogger("streamer.stream.processor")


class ProductOperations:
    """Needs of its class: cameras, stream, products, metrics, truth, on_pipeline, _announce, _audit, archive."""

    def _start_products(self, initial: dict) -> None:
        """The configured products beyond each camera's default one, and every product's negative examples
        (initial: camera id -> [streamer.stream.product_examples.ProductExamples], the first the default one)."""
        for camera, specs in initial.items():
            products = self.products.pipeline(camera)
            for spec in specs[1:]:
                support = self.products.add_product(camera, spec.name, *spec.support, label=spec.label)
                self.products.history(camera, spec.name).push(*spec.support, support.support_id)
                # On the products mix, a product named as one of its kinds has that kind's truth.
                self.truth.note(support.support_id, spec.name)
            for k, spec in enumerate(specs):
                name = products.names[0] if k == 0 else spec.name
                for image, mask in spec.negatives:
                    products.product(name).add_negative(image, mask)
                self.metrics.product_series(camera, name)
            log.info("camera %s: products %s", camera, ", ".join(
                f"{name} ({len(products.product(name).negatives)} negatives)" for name in products.names))

    def products_status(self, camera: str) -> dict:
        """{"products": [...]} where `camera` counts several products or has negative examples, else {}: each
        product's name, support id, label and the negative examples in force."""
        products = self.products.pipeline(camera)
        if not products.several and not products.product().negatives:
            return {}
        return {"products": [
            {"name": name, "support_id": pipeline.support.support_id if pipeline.support else None,
             "label": pipeline.support.label if pipeline.support else None,
             "negatives": [n.negative_id for n in pipeline.negatives]}
            for name, pipeline in list(products.pipelines.items())  # a snapshot: products change on another thread
        ]}

    def _cameras_for(self, camera: str | None) -> list[str]:
        return self.cameras if camera is None else [self.products.check_camera(camera)]

    # -- what control and the console share (any thread) ----------------------------------------------
    def add_product(self, name: str, image: np.ndarray, mask: np.ndarray, camera: str | None = None,
                    truth_kind: str | None = None):
        """A new product `name` (uint8[H, W, 3] RGB image, bool[H, W] mask its support) on `camera` (None: every
        camera) -> its Support. UserError, with nothing changed on any camera, for a taken or bad name, one product
        too many or a bad support."""
        self._check_one_worker("several products on a camera")
        cameras = self._cameras_for(camera)
        for name_of in cameras:
            self.products.pipeline(name_of).check_new(name)
        packed = pack(image, mask)

        def change():
            support = None
            for name_of in cameras:
                support = self.products.add_product(name_of, name, image, mask)
                self.products.history(name_of, name).push(image, mask, support.support_id, packed=packed)
                self.metrics.product_series(name_of, name)
                if self.tally is not None:
                    self.tally.set_support(mask, name_of, product=name)  # its items, its own spec
                if truth_kind is not None:
                    self.truth.note(support.support_id, truth_kind)
            return support

        support = self.on_pipeline(change)
        log.info("product %s added: support %s (%s)", name, support.support_id, ", ".join(cameras))
        self._after_product_change("product_added", cameras, name, None, support.support_id)
        if self.archive is not None:
            self.archive.note_support(support.support_id, image, mask)
        return support

    def remove_product(self, name: str, camera: str | None = None) -> None:
        cameras = self._cameras_for(camera)
        for name_of in cameras:
            products = self.products.pipeline(name_of)
            products.product(name)
            if name == products.names[0]:
                raise UserError(f"{name!r} is camera {name_of}'s default product; it stays (replace its support "
                                "instead)")

        def change():
            for name_of in cameras:
                self.products.remove_product(name_of, name)
                self.metrics.forget_product(name_of, name)
                if self.tally is not None:
                    self.tally.forget_product(name_of, name)

        self.on_pipeline(change)
        self._after_product_change("product_removed", cameras, name, name, None)

    def add_negative(self, image: np.ndarray, mask: np.ndarray, camera: str | None = None,
                     product: str | None = None) -> str:
        """A "not this" example (uint8[H, W, 3] RGB, bool[H, W]) for `camera`'s product (None: every camera; the
        default product) -> its id. UserError, with nothing changed, for an example that would silence the product,
        one too many, or an unknown camera or product."""
        self._check_one_worker("negative examples")
        cameras = self._cameras_for(camera)
        for name_of in cameras:
            self.products.check_product(name_of, product)

        def change():
            # The first camera's check refuses a bad example before any camera has changed.
            added = [self.products.pipeline(name_of).product(product).add_negative(image, mask)
                     for name_of in cameras]
            for name_of in cameras:
                self.metrics.product_series(name_of, product or self.products.pipeline(name_of).names[0])
            return added[0].negative_id

        negative_id = self.on_pipeline(change)
        self._after_product_change("negative_added", cameras, product, None, negative_id)
        return negative_id

    def clear_negatives(self, camera: str | None = None, product: str | None = None) -> int:
        """Forget the negative examples of `camera`'s product (None: every camera; the default product) -> how many
        there were in all."""
        cameras = self._cameras_for(camera)
        for name_of in cameras:
            self.products.check_product(name_of, product)
        cleared = self.on_pipeline(lambda: sum(self.products.pipeline(c).product(product).clear_negatives()
                                                for c in cameras))
        self._after_product_change("negatives_cleared", cameras, product, None, None)
        return cleared

    def _after_product_change(self, event: str, cameras: list[str], product: str | None, old: str | None,
                              new: str | None) -> None:
        self._announce(event, cameras)
        for camera in cameras:
            self._audit(event, camera, old, new if product is None else f"{product}:{new}")

    # -- control commands (control thread) -----------------------------------------------------------
    def _check_one_worker(self, what: str) -> None:
        """UserError where several workers segment the frames: their replicas hold each camera's one product."""
        from streamer.stream.parallel import ParallelWorker

        if isinstance(getattr(self, "worker", None), ParallelWorker):
            raise UserError(f"{what} need stream.workers: 1 (the {self.worker.workers} workers segment each "
                            "camera's one product)")

    def _product_handlers(self) -> dict:
        return {"add_product": self._cmd_add_product, "remove_product": self._cmd_remove_product,
                "add_negative": self._cmd_add_negative, "clear_negatives": self._cmd_clear_negatives}

    def _request_target(self, request: dict) -> tuple[str | None, str | None]:
        camera, product = request.get("camera"), request.get("product")
        for key, value in (("camera", camera), ("product", product)):
            if value is not None and not isinstance(value, str):
                raise UserError(f"{key} must be a string")
        if camera is not None:
            self.products.check_camera(camera)
        return camera, product

    def _images(self, frames: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
        return support_from_bytes(frames[0], frames[1], self.stream.control.max_image_pixels,
                                  self.stream.control.max_image_bytes)

    def _cmd_add_product(self, request: dict, frames: list[bytes]) -> dict:
        camera, product = self._request_target(request)
        if product is None:
            raise UserError('add_product needs "product": the new product\'s name')
        for name_of in self._cameras_for(camera):  # a bad name is refused before the images are decoded
            self.products.pipeline(name_of).check_new(product)
        support = self.add_product(product, *self._images(frames), camera=camera)
        return {"product": product, "support_id": support.support_id, "cameras": self._cameras_for(camera)}

    def _cmd_remove_product(self, request: dict, frames: list[bytes]) -> dict:
        camera, product = self._request_target(request)
        if product is None:
            raise UserError('remove_product needs "product": the name of the product to stop counting')
        self.remove_product(product, camera=camera)
        return {"product": product, "cameras": self._cameras_for(camera)}

    def _cmd_add_negative(self, request: dict, frames: list[bytes]) -> dict:
        camera, product = self._request_target(request)
        for name_of in self._cameras_for(camera):
            self.products.check_product(name_of, product)
        negative_id = self.add_negative(*self._images(frames), camera=camera, product=product)
        return {"negative_id": negative_id, "cameras": self._cameras_for(camera)}

    def _cmd_clear_negatives(self, request: dict, frames: list[bytes]) -> dict:
        camera, product = self._request_target(request)
        return {"cleared": self.clear_negatives(camera=camera, product=product), "cameras": self._cameras_for(camera)}
