"""The configured products of each camera and their negative examples, read from their files (or the products mix's
simulator) before the processor starts: `stream.sources[i].products`, and the negatives of `support` (the
configuration's, or a camera's own)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from streamer.errors import UserError
from streamer.imageio import read_image, read_mask
from streamer.persense.products import DEFAULT_PRODUCT
from streamer.product_config import ExampleConfig, SupportConfig

Example = tuple[np.ndarray, np.ndarray]  # uint8[H, W, 3] RGB, bool[H, W]


@dataclass
class ProductExamples:
    """One product of a camera: its name, its support, its configured label, and its negative examples."""

    name: str
    support: Example | None  # None: the processor's support for the camera (its default product only)
    label: str | None = None
    negatives: list[Example] = field(default_factory=list)


class _Simulator:
    """The source's simulator, made once and only where an example asks for it."""

    def __init__(self, source):
        self.source, self._made = source, None

    def example(self, kind: str, what: str) -> Example:
        if self._made is None:
            from streamer.sources import open_source

            self._made = open_source(self.source.uri, self.source.camera_id, **self.source.options)
        if not hasattr(self._made, "example"):
            raise UserError(f"{what}: kind {kind!r} names an example of the simulator; this source is not it")
        return self._made.example(kind)


def read_example(example: ExampleConfig | SupportConfig, simulator: _Simulator, what: str,
                 kind: str | None = None) -> Example:
    """An example's image and mask from its files, or the simulator's example of its `kind` (or of `kind` given,
    where the example names none and has no files)."""
    kind = getattr(example, "kind", None) or (kind if example.image is None and example.mask is None else None)
    if kind is not None:
        return simulator.example(kind, what)
    if example.image is None or example.mask is None:
        raise UserError(f"{what} needs both image and mask")
    return read_image(example.image, f"{what} image"), read_mask(example.mask, f"{what} mask")


def camera_products(sources: list, default: SupportConfig | None = None) -> dict[str, list[ProductExamples]]:
    """camera id -> its products where it counts several, or its one product where it has negatives; the
    negatives of the configuration's `default` support go to every camera without a support of its own. UserError
    naming the camera and the file for anything unreadable."""
    found: dict[str, list[ProductExamples]] = {}
    for source in sources:
        camera = source.camera_id
        simulator = _Simulator(source)
        try:
            if source.products is not None:
                found[camera] = [
                    ProductExamples(p.name, read_example(p.support, simulator, f"product {p.name}'s support", p.name),
                                    p.support.label, _negatives(p.support, simulator, p.name))
                    for p in source.products
                ]
                continue
            own = source.support if source.support is not None else default
            if own is not None and own.negatives:
                found[camera] = [ProductExamples(DEFAULT_PRODUCT, None, None, _negatives(own, simulator, "the product"))]
        except UserError as exc:
            raise UserError(f"camera {camera}: {exc}") from None
    return found


def _negatives(support: SupportConfig, simulator: _Simulator, product: str) -> list[Example]:
    return [read_example(n, simulator, f"{product}'s negative example {k}") for k, n in enumerate(support.negatives)]
