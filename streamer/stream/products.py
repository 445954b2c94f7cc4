"""Each camera's products over one shared engine set: per camera a streamer.persense.products.Products (its default
product, and any others it counts: docs/products.md), with its gate.

Cameras with the same engines share the loaded models: every pipeline here holds the same EngineSet and the same
encoder lock (the encoder is used by one thread at a time, whichever camera asks). A support that another product
already uses is taken over without an encoder pass; otherwise the prototype cache on disk is asked first.
"""

from __future__ import annotations

import threading

import numpy as np

from engines.interfaces import EngineSet
from streamer.errors import UserError
from streamer.persense.pipeline import PerSense, Support, support_id_for
from streamer.persense.products import DEFAULT_MAX_PRODUCTS, DEFAULT_PRODUCT, Products
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
        max_products: the products one camera may count (stream.max_products).
        default_names: camera id -> the name of its default (first) product; DEFAULT_PRODUCT where not given.
        product_threads: how many of a camera's products segment a frame at once (stream.product_threads,
            resolved: streamer.stream.worker_choice.resolved_product_threads).
    """

    def __init__(self, engines: EngineSet, pipeline_config, gates: dict, cache: PrototypeCache,
                 labeler=None, labels: dict[str, str | None] | None = None, history_bytes: int = DEFAULT_HISTORY_BYTES,
                 max_products: int = DEFAULT_MAX_PRODUCTS, default_names: dict[str, str] | None = None,
                 product_threads: int = 1):
        self.engines = engines
        self.cache = cache
        self._history_bytes = history_bytes
        encoder_lock = threading.Lock()
        labels, default_names = labels or {}, default_names or {}
        self.pipelines = {
            camera: Products(engines, pipeline_config, gate, labeler=labeler, label=labels.get(camera),
                             encoder_lock=encoder_lock, max_products=max_products,
                             default_name=default_names.get(camera, DEFAULT_PRODUCT), threads=product_threads)
            for camera, gate in gates.items()
        }
        # The default product's supports, newest last (the console's Undo); the other products' beside them.
        self.histories = {camera: SupportHistory(max_bytes=history_bytes) for camera in gates}
        self._other_histories: dict[tuple[str, str], SupportHistory] = {}

    def close(self) -> None:
        """End the products' threads (streamer.persense.products.Products.close)."""
        for products in self.pipelines.values():
            products.close()

    @property
    def cameras(self) -> list[str]:
        return list(self.pipelines)

    def pipeline(self, camera: str) -> Products:
        return self.pipelines[camera]

    def check_camera(self, camera: str) -> str:
        """The camera id when this processor has it, else UserError naming the ones it has."""
        if camera not in self.pipelines:
            raise UserError(f"unknown camera {str(camera)[:64]!r}; cameras: {', '.join(self.pipelines)}")
        return camera

    def check_product(self, camera: str, product: str | None) -> str | None:
        """The product's name when `camera` counts it (None: the default product), else UserError naming them."""
        if product is not None:
            self.pipelines[camera].product(product)
        return product

    def history(self, camera: str, product: str | None = None) -> SupportHistory:
        """The supports of `camera`'s product (None: its default product), newest last."""
        products = self.pipelines[camera]
        if product is None or product == products.names[0]:
            return self.histories[camera]
        products.product(product)
        return self._other_histories.setdefault((camera, product), SupportHistory(max_bytes=self._history_bytes))

    def support_id(self, camera: str, product: str | None = None) -> str | None:
        support = self.pipelines[camera].product(product).support
        return support.support_id if support else None

    def label(self, camera: str, product: str | None = None) -> str | None:
        support = self.pipelines[camera].product(product).support
        return support.label if support else None

    def apply(self, camera: str, image: np.ndarray, mask: np.ndarray, product: str | None = None) -> Support:
        """Make (uint8[H, W, 3] RGB, bool[H, W]) the support of `camera`'s product (None: the default one), on the
        thread that runs its pipeline -> it. UserError for a bad support, which leaves the old one in force."""
        return self._apply_to(self.pipelines[camera].product(product), image, mask)

    def add_product(self, camera: str, name: str, image: np.ndarray, mask: np.ndarray,
                    label: str | None = None) -> Support:
        """A new product `name` on `camera` with this support; UserError (nothing changes) for a taken or bad name,
        one product too many, or a bad support."""
        return self.pipelines[camera].add(name, image, mask, label=label, apply=self._apply_to)

    def remove_product(self, camera: str, name: str) -> None:
        self.pipelines[camera].remove(name)
        self._other_histories.pop((camera, name), None)

    def _apply_to(self, pipeline: PerSense, image: np.ndarray, mask: np.ndarray) -> Support:
        mask = np.asarray(mask, dtype=bool)  # no copy of a mask that is bool already
        wanted = support_id_for(image, mask, self.engines.name)
        for products in self.pipelines.values():
            for other in products.pipelines.values():
                if other is not pipeline and other.support is not None and other.support.support_id == wanted:
                    return pipeline.set_support(image, mask, prototype=other.support.prototype,
                                                calibration=other.support.calibration, label=other.support.label)
        return apply_support(pipeline, image, mask, self.cache)
