"""The configured products of each camera and their negative examples, read from their files (or the products mix's
simulator) before the processor starts: `stream.sources[i].products`, and the negatives of `support` (the
configuration's, or a camera's own)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from streamer.errors import UserError
from streamer.imageio import read_image, read_mask
from streamer.persense.products import DEFAULT_PRODUCT
from streamer.product_config import ExampleConfig, ProductConfig, SupportConfig

Example = tuple[np.ndarray, np.ndarray]  # uint8[H, W, 3] RGB, bool[H, W]


@dataclass
class ProductExamples:
    """One product of a camera: its name, its support, its configured label, and its negative examples."""

    name: str
    support: Example | None  # None: the processor's support for the camera (its default product only)
    label: str | None = None
    negatives: list[Example] = field(default_factory=list)


class SimulatorExamples:
    """The source's simulator, made once and only where an example asks for it (None: there is no source)."""

    def __init__(self, source):
        self.source, self._made = source, None

    def example(self, kind: str, what: str) -> Example:
        if self.source is None:
            raise UserError(f"{what}: kind {kind!r} names an example of the simulator, which only a stream's sim: "
                            "source has: give image and mask")
        if self._made is None:
            from streamer.sources import open_source

            self._made = open_source(self.source.uri, self.source.camera_id, **self.source.options)
        if not hasattr(self._made, "example"):
            raise UserError(f"{what}: kind {kind!r} names an example of the simulator; this source is not it")
        return self._made.example(kind)


def read_example(example: ExampleConfig | SupportConfig, simulator: SimulatorExamples, what: str,
                 kind: str | None = None) -> Example:
    """An example's image and mask from its files, or the simulator's example of its `kind` (or of `kind` given,
    where the example names none and has no files)."""
    kind = getattr(example, "kind", None) or (kind if example.image is None and example.mask is None else None)
    if kind is not None:
        return simulator.example(kind, what)
    if example.image is None or example.mask is None:
        raise UserError(f"{what} needs both image and mask")
    return read_image(example.image, f"{what} image"), read_mask(example.mask, f"{what} mask")


def read_products(products: list[ProductConfig], source=None) -> list[ProductExamples]:
    """Configured products -> their examples, read from their files (or from `source`'s simulator, a SourceConfig)."""
    simulator = SimulatorExamples(source)
    return [ProductExamples(p.name, read_example(p.support, simulator, f"product {p.name}'s support", p.name),
                            p.support.label, _negatives(p.support, simulator, p.name))
            for p in products]


def camera_products(sources: list, default: SupportConfig | None = None,
                    default_products: list[ProductConfig] | None = None) -> dict[str, list[ProductExamples]]:
    """camera id -> its products where it counts several, or its one product where it has negatives. A camera
    without a support or products of its own takes the configuration's `default_products` (top-level `products`),
    else the negatives of its `default` support. UserError naming the camera and the file for anything
    unreadable."""
    found: dict[str, list[ProductExamples]] = {}
    for source in sources:
        camera = source.camera_id
        simulator = SimulatorExamples(source)
        try:
            products = source.products
            if products is None and source.support is None:
                products = default_products
            if products is not None:
                found[camera] = read_products(products, source)
                continue
            own = source.support if source.support is not None else default
            if own is not None and own.negatives:
                found[camera] = [ProductExamples(DEFAULT_PRODUCT, None, None, _negatives(own, simulator, "the product"))]
        except UserError as exc:
            raise UserError(f"camera {camera}: {exc}") from None
    return found


def _negatives(support: SupportConfig, simulator: SimulatorExamples, product: str) -> list[Example]:
    return [read_example(n, simulator, f"{product}'s negative example {k}") for k, n in enumerate(support.negatives)]
