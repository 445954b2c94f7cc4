"""Several products on one camera: the frame is encoded once, each product's PerSense runs over that encoding
(its own similarity, density, prompts and decoding), and where two products found one object the claim rule
(streamer.persense.claims) gives it to the better match.

The products of a frame may run side by side on a few threads (`threads`, stream.product_threads): each over its
own view of the frame's work (for_product), the frame's shared maps computed once among them
(engines.frame_cache), the claim rule applied after all have finished, in the products' order: the result is the
one they give in turn, object for object.

One product is the default and behaves exactly as a lone PerSense: `segment` returns its result as it is (no
`product` on the instances, no `products` figures). Only with several products does the result carry them.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace

import numpy as np

from engines.interfaces import ClassLabelExtractor, EngineSet
from streamer.config import PipelineConfig
from streamer.errors import UserError
from streamer.gates import Gate, NoGate
from streamer.persense.claims import resolve_claims
from streamer.persense.frames import EncodedFrame, Support
from streamer.persense.negatives import prototype_matches
from streamer.persense.pipeline import PerSense
from streamer.types import SegmentationResult

log = logging.getLogger(__name__)

DEFAULT_PRODUCT = "product"  # the name of a camera's one product where none is configured
DEFAULT_MAX_PRODUCTS = 8
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")  # a product's name is a metrics label and a JSON key: short and plain


def check_product_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise UserError(f"product name {str(name)[:64]!r}: use 1-64 letters, digits, '_', '.', '-'")
    return name


class _OncePerFrame:
    """The camera's gate, asked once per frame whatever the number of products (a detector gate runs once, and
    its every_n_frames counts frames, not products), also by products on threads of their own. Outside `frame()`
    it is the gate itself."""

    def __init__(self, gate: Gate):
        self.gate = gate
        self._frame: list | None = None  # [image, boxes] of the frame the products are segmenting
        self._lock = threading.Lock()

    @contextmanager
    def frame(self):
        self._frame = [None, None]
        try:
            yield
        finally:
            self._frame = None

    def boxes(self, image_rgb: np.ndarray) -> np.ndarray | None:
        if self._frame is None:
            return self.gate.boxes(image_rgb)
        with self._lock:
            if self._frame[0] is not image_rgb:
                self._frame[:] = [image_rgb, self.gate.boxes(image_rgb)]
            return self._frame[1]

    def why_empty(self) -> str:
        return self.gate.why_empty()

    def __getattr__(self, name):  # set_label, needs_label: the gate's own
        return getattr(self.gate, name)


class Products:
    """A camera's products, in order; the first is the default one (the one a request without a name changes).

    It answers as a PerSense does (encode, segment, support, set_support, engines), so that a camera with one
    product is driven as before.

    Args:
        engines, config, labeler: as PerSense's; every product shares them.
        gate: the camera's gate, asked once per frame for every product.
        label: the default product's configured name (support.label).
        encoder_lock: shared by every pipeline over `engines` (streamer.stream.products).
        max_products: refuse more products than this (UserError).
        default_name: the first product's name.
        threads: how many of a frame's products run at once (the calling thread and threads - 1 of a pool this
            object owns; `close()` ends them); 1: in turn. Side by side only where the engines allow it
            (EngineSet.products_side_by_side); the results are the same either way.
    """

    def __init__(self, engines: EngineSet, config: PipelineConfig | None = None, gate: Gate | None = None,
                 labeler: ClassLabelExtractor | None = None, label: str | None = None,
                 encoder_lock: threading.Lock | None = None, max_products: int = DEFAULT_MAX_PRODUCTS,
                 default_name: str = DEFAULT_PRODUCT, threads: int = 1):
        self.engines = engines
        self.config = config or PipelineConfig()
        self.gate = gate or NoGate()
        self._frame_gate = _OncePerFrame(self.gate)
        self.labeler = labeler
        self.max_products = max_products
        self._encoder_lock = encoder_lock or threading.Lock()
        self.pipelines: dict[str, PerSense] = {check_product_name(default_name): self._pipeline(label)}
        self.claims = True  # False: every product keeps all it finds (to measure the claim rule's effect)
        self.threads = max(1, int(threads))
        self._pool: ThreadPoolExecutor | None = None
        self._pool_size = 0

    # -- the products -----------------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return list(self.pipelines)

    @property
    def several(self) -> bool:
        return len(self.pipelines) > 1

    def product(self, name: str | None = None) -> PerSense:
        """The named product's pipeline (None: the default one); UserError naming the products for an unknown one."""
        if name is None:
            return next(iter(self.pipelines.values()))
        if name not in self.pipelines:
            raise UserError(f"no product {str(name)[:64]!r}; products: {', '.join(self.pipelines)}")
        return self.pipelines[name]

    def check_new(self, name: object) -> str:
        """The name of a product that may be added (UserError: a bad or taken name, or the bound reached)."""
        name = check_product_name(name)
        if name in self.pipelines:
            raise UserError(f"there is a product named {name!r} already: product names must differ")
        if len(self.pipelines) >= self.max_products:
            raise UserError(f"this camera has {len(self.pipelines)} products, the most it takes (max_products "
                            f"{self.max_products}): remove one first")
        if getattr(self.gate, "needs_label", False):
            raise UserError("the grounding gate finds one label per camera: several products need another gate")
        return name

    def add(self, name: str, image_rgb: np.ndarray, mask: np.ndarray, label: str | None = None,
            apply=None) -> Support:
        """A new product `name` with this support (uint8[H, W, 3] RGB, bool[H, W]) -> its Support. Nothing changes
        where the name or the support is refused (UserError). apply(pipeline, image, mask) sets the support
        (default: PerSense.set_support; the stream passes its cached path)."""
        name = self.check_new(name)
        pipeline = self._pipeline(label)
        support = (apply or (lambda p, i, m: p.set_support(i, m)))(pipeline, image_rgb, mask)
        self.pipelines[name] = pipeline
        log.info("product %s added (support %s); %d products", name, support.support_id, len(self.pipelines))
        return support

    def remove(self, name: str) -> None:
        """Stop counting product `name`; the default (first) product stays."""
        self.product(name)
        if name == self.names[0]:
            raise UserError(f"{name!r} is the default product; it stays (replace its support instead)")
        del self.pipelines[name]

    def _pipeline(self, label: str | None) -> PerSense:
        return PerSense(self.engines, self.config, self._frame_gate, labeler=self.labeler, label=label,
                        encoder_lock=self._encoder_lock)

    # -- as a PerSense (the default product) --------------------------------------------------------------
    @property
    def support(self) -> Support | None:
        return self.product().support

    @property
    def fixed_label(self) -> str | None:
        return self.product().fixed_label

    def set_support(self, *args, **kwargs) -> Support:
        return self.product().set_support(*args, **kwargs)

    def encode(self, image_rgb: np.ndarray) -> EncodedFrame:
        return self.product().encode(image_rgb)

    def encode_batch(self, images_rgb: list[np.ndarray]) -> list[EncodedFrame]:
        """Several frames in one encoder call where the encoder takes batches (PerSense.encode_batch); every product
        segments over the same encodings."""
        return self.product().encode_batch(images_rgb)

    def segment(self, image_rgb: np.ndarray, encoded: EncodedFrame | None = None) -> SegmentationResult:
        """Every product's objects in one uint8[H, W, 3] RGB frame, over one encoding of it."""
        if not self.several:
            result = self.product().segment(image_rgb, encoded)
            result.product = self.names[0]
            return result
        encoded = encoded if encoded is not None else self.encode(image_rgb)
        names = self.names
        pipelines = [self.pipelines[name] for name in names]
        with self._frame_gate.frame():
            results = self._each_product(pipelines, image_rgb, encoded)
        start = time.perf_counter()
        prototypes = np.stack([pipeline.support.prototype for pipeline in pipelines])
        matches = [prototype_matches(encoded.embedding, r.instances, prototypes) for r in results]
        keep = resolve_claims([r.instances for r in results], matches) if self.claims else \
            [np.ones(len(r.instances), bool) for r in results]
        merged = merge(names, results, keep)
        merged.timings_ms["postprocess"] = merged.timings_ms.get("postprocess", 0.0) + \
            (time.perf_counter() - start) * 1000.0
        for name, pipeline in zip(names, pipelines):
            merged.products[name]["support_id"] = pipeline.support.support_id
        return merged

    def side_by_side(self) -> int:
        """How many products of a frame run at once: `threads`, at most the products, 1 where the engines do not
        allow it."""
        if not getattr(self.engines, "products_side_by_side", False):
            return 1
        return max(1, min(self.threads, len(self.pipelines)))

    def _each_product(self, pipelines: list[PerSense], image_rgb: np.ndarray,
                      encoded: EncodedFrame) -> list[SegmentationResult]:
        """Each pipeline's result on the frame, in the pipelines' order: in turn, or side by side (the first on
        this thread, the others on the pool). Every product finishes before an error is raised (the first
        product's in order), so that no thread still works on the frame."""
        workers = self.side_by_side()
        if workers == 1:
            return [pipeline.segment(image_rgb, for_product(encoded)) for pipeline in pipelines]
        pool = self._threads(workers - 1)
        futures = [pool.submit(pipeline.segment, image_rgb, for_product(encoded)) for pipeline in pipelines[1:]]
        try:
            first = pipelines[0].segment(image_rgb, for_product(encoded))
        finally:
            errors = [future.exception() for future in futures]
        for error in errors:
            if error is not None:
                raise error
        return [first] + [future.result() for future in futures]

    def _threads(self, size: int) -> ThreadPoolExecutor:
        if self._pool is None or self._pool_size != size:
            self.close()
            self._pool = ThreadPoolExecutor(size, thread_name_prefix="product")
            self._pool_size = size
            # A Products dropped without close() does not keep its threads.
            weakref.finalize(self, self._pool.shutdown, wait=False)
        return self._pool

    def close(self) -> None:
        """End the pool's threads (a later frame starts them again)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool, self._pool_size = None, 0


def for_product(encoded: EncodedFrame) -> EncodedFrame:
    """A frame's one encoding as each product's pipeline sees it. An engine whose payload keeps a frame's state
    for the support being matched (the any-shape engines' FrameWork.active) offers `view()`: the frame's caches
    shared, that state fresh; without it, a round product listed after an any-shape one took the latter's
    regions for its own (it counted the tiles)."""
    view = getattr(encoded.embedding.payload, "view", None)
    if view is None:
        return encoded
    return replace(encoded, embedding=replace(encoded.embedding, payload=view()))


def merge(names: list[str], results: list[SegmentationResult], keep: list[np.ndarray]) -> SegmentationResult:
    """One result of several products' results over one frame: the kept instances (bool[N_p] per product), each
    named with its product and numbered in turn; per-product figures under `products`; the stages' times added up
    (the encoder's once, it ran once)."""
    instances, products, timings = [], {}, {}
    for name, result, kept in zip(names, results, keep):
        own = [inst for inst, k in zip(result.instances, kept) if k]
        instances += [replace(inst, id=len(instances) + k, product=name) for k, inst in enumerate(own)]
        products[name] = {
            "count": len(own), "label": result.label, "match_quality": round(float(result.match_quality), 4),
            "density_count": round(float(result.density_count), 3), "negatives": result.negatives,
            "suppressed_by_negative": result.suppressed_by_negative, "claimed_by_other": int((~kept).sum()),
            **({"reason": result.reason} if result.reason else {}),
        }
        for stage, ms in result.timings_ms.items():
            timings[stage] = timings.get(stage, 0.0) + ms
    timings["encode"] = results[0].timings_ms.get("encode", 0.0)
    first = results[0]
    return SegmentationResult(
        width=first.width, height=first.height, instances=instances,
        density_count=float(sum(r.density_count for r in results)),
        points=np.concatenate([r.points for r in results]) if results else first.points,
        timings_ms=timings, match_quality=max(float(r.match_quality) for r in results),
        label=None, reason=first.reason if all(r.reason for r in results) else "",
        negatives=sum(r.negatives for r in results),
        suppressed_by_negative=sum(r.suppressed_by_negative for r in results), products=products,
    )
