"""A camera's products segmenting one frame side by side (issue 28's cost: Products.threads, stream.product_threads)
give exactly what they give in turn: the claim rule after all have finished, in the products' order, each product
over its own view of the frame's work, the frame's shared maps computed once among the threads."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from engines.embedded.features import compute_descriptors
from engines.embedded.payload import SUPPORT_CHROMA
from engines.frame_cache import FrameCache, compute_once
from engines.interfaces import EngineSet
from streamer.config import EnginesConfig
from streamer.engine_factory import build_engines
from streamer.persense.products import Products
from streamer.simulator.mix import PRODUCTS_MIX, Kind, MixedConveyor
from streamer.stream.worker_choice import machine_cores, resolved_product_threads

# Two round products (the outline engines: each keeps its colour on the frame between its calls) and two any-shape
# ones (they share the frame's filter planes), with the biscuit's look-alike on the belt.
MINT = Kind("mint", "ellipse", (130.0, 0.6, 0.7), 0.3)
KINDS = (*PRODUCTS_MIX, MINT)


def _camera(engines, examples, threads: int) -> Products:
    names = examples.products
    camera = Products(engines, default_name=names[0], threads=threads)
    camera.set_support(*examples.support(names[0]))
    for name in names[1:]:
        camera.add(name, *examples.support(name))
    camera.product("biscuit").add_negative(*examples.support("candy"))
    return camera


def _assert_same(a, b) -> None:
    assert [i.product for i in a.instances] == [i.product for i in b.instances]
    for x, y in zip(a.instances, b.instances):
        assert x.id == y.id and x.bbox == y.bbox and x.score == y.score and np.array_equal(x.mask, y.mask)
    assert a.products == b.products and a.density_count == b.density_count and np.array_equal(a.points, b.points)


def test_products_side_by_side_give_exactly_what_they_give_in_turn():
    mix, examples = MixedConveyor(KINDS, seed=0), MixedConveyor(KINDS, seed=1)
    engines = build_engines(EnginesConfig())
    in_turn, side = _camera(engines, examples, 1), _camera(engines, examples, 4)
    assert side.side_by_side() == 4 and in_turn.side_by_side() == 1
    try:
        found = {}
        for index in (0, 9, 18):
            image = mix.frame(index).image
            # Side by side first: nothing the products in turn left on the engines helps them.
            together, alone = side.segment(image), in_turn.segment(image)
            _assert_same(together, alone)
            found.update({name: found.get(name, 0) + figures["count"] for name, figures in alone.products.items()})
        # Every product found its objects (an empty frame would agree trivially).
        assert all(count >= 15 for count in found.values()), found
    finally:
        side.close()


def test_an_error_in_one_product_is_raised_after_every_product_finished():
    mix, examples = MixedConveyor(seed=0), MixedConveyor(seed=1)
    engines = build_engines(EnginesConfig())
    camera = Products(engines, default_name="biscuit", threads=3)
    camera.set_support(*examples.support("biscuit"))
    for name in ("tile", "soap"):
        camera.add(name, *examples.support(name))
    finished = []
    soap = camera.product("soap")
    segment = soap.segment

    def slow_then_fail(*args, **kwargs):
        time.sleep(0.2)
        raise ValueError("soap failed")

    def tile_done(*args, _segment=camera.product("tile").segment, **kwargs):
        result = _segment(*args, **kwargs)
        finished.append("tile")
        return result

    soap.segment = slow_then_fail
    camera.product("tile").segment = tile_done
    try:
        with pytest.raises(ValueError, match="soap failed"):
            camera.segment(mix.frame(0).image)
        assert finished == ["tile"]
        soap.segment = segment
        assert camera.segment(mix.frame(0).image).products["soap"]["count"] > 0  # the next frame is segmented
    finally:
        camera.close()


def test_engines_that_do_not_allow_it_run_the_products_in_turn():
    engines = build_engines(EnginesConfig())
    serial = EngineSet(engines.encoder, engines.decoder, engines.dmg, engines.name)  # products_side_by_side False
    examples = MixedConveyor(seed=1)
    camera = Products(serial, default_name="biscuit", threads=4)
    camera.set_support(*examples.support("biscuit"))
    camera.add("tile", *examples.support("tile"))
    assert camera.side_by_side() == 1
    assert Products(engines, threads=4).side_by_side() == 1  # one product: nothing to run beside it


def test_a_view_of_a_frames_descriptors_shares_its_maps_and_keeps_its_own_support_state():
    rng = np.random.default_rng(0)
    frame = compute_descriptors(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8))
    first, second = frame.view(), frame.view()
    assert first.smoothed(1.5) is second.smoothed(1.5) is frame.smoothed(1.5)
    assert first.pooled(2).data is second.pooled(2).data
    first.remember(SUPPORT_CHROMA, np.array([0.1, 0.2]))
    assert second.peek(SUPPORT_CHROMA) is None and frame.peek(SUPPORT_CHROMA) is None
    assert first.pooled(2) is first.pooled(2)  # one support's calls keep what they found on the pooled grid
    first.pooled(2).per_support(("rims",), dict)[3.0] = "first's"
    assert second.pooled(2).per_support(("rims",), dict) == {}


def test_a_frame_cache_computes_each_key_once_among_threads():
    cache, calls, results = FrameCache(), [], []
    start = threading.Barrier(6)

    def compute():
        calls.append(1)
        time.sleep(0.05)  # long enough for every thread to ask while it runs
        return object()

    def ask():
        start.wait(timeout=5)
        results.append(compute_once(cache, ("plane",), compute))

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    assert len(calls) == 1 and len(results) == 6 and all(r is results[0] for r in results)
    plain: dict = {}
    assert compute_once(plain, "k", lambda: 3) == 3 and plain == {"k": 3}


def test_stream_product_threads_default_to_the_cores():
    assert resolved_product_threads(None) == machine_cores()
    assert resolved_product_threads(3) == 3
