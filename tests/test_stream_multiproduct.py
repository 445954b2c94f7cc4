"""Several products on one camera in a running processor (docs/products.md): configured products and negatives,
per-product figures, truth and metrics in what is published, and the control requests that add, change and remove
products and negatives; bad requests get one error line and change nothing."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import zmq

from control_client import ask
from streamer.config import Config, EnginesConfig
from streamer.engine_factory import build_engines
from streamer.errors import UserError
from streamer.simulator.mix import MixedConveyor
from streamer.stream.config import StreamConfig
from streamer.stream.processor import StreamProcessor
from streamer.stream.product_examples import camera_products

SIM = "sim:?scene=products&width=320&height=240&objects=30&fps=6"


def _stream(tmp_path, products, **overrides) -> StreamConfig:
    return StreamConfig.model_validate({
        "sources": [{"uri": SIM, "camera_id": "mix", "products": products}],
        "publish": {"endpoint": "tcp://127.0.0.1:*"},
        "control": {"endpoint": "tcp://127.0.0.1:*"},
        "metrics": {"port": 0},
        "console": {"enabled": False},
        "cache_dir": str(tmp_path),
        **overrides,
    })


def _start(stream: StreamConfig) -> StreamProcessor:
    products = camera_products(stream.sources)
    proc = StreamProcessor(Config(stream=stream), build_engines(EnginesConfig()), products["mix"][0].support,
                           camera_products=products)
    proc.start()
    return proc


def _png(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", image)[1].tobytes()


def _frames(example) -> tuple[bytes, bytes]:
    image, mask = example
    return _png(cv2.cvtColor(image, cv2.COLOR_RGB2BGR)), _png(mask.astype(np.uint8) * 255)


def _results(proc, until, timeout_s: float = 60.0) -> dict:
    """The first result header for which until(header) holds."""
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SUBSCRIBE, b"persense/mix/result")
    sock.connect(proc.publisher.endpoint)
    try:
        while sock.poll(int(timeout_s * 1000)):
            header = json.loads(sock.recv_multipart()[1])
            if until(header):
                return header
    finally:
        sock.close(0)
    raise AssertionError("no such result")


@pytest.fixture
def mix_examples():
    return MixedConveyor(width=320, height=240, n_objects=30)


def test_configured_products_are_published_with_their_figures_truth_and_metrics(tmp_path):
    proc = _start(_stream(tmp_path, [{"name": "biscuit", "support": {"negatives": [{"kind": "candy"}]}},
                                     {"name": "tile"}]))
    try:
        header = _results(proc, lambda h: "products" in h and h["products"]["biscuit"]["count"] > 0)
        figures = header["products"]
        assert list(figures) == ["biscuit", "tile"]
        assert figures["biscuit"]["negatives"] == 1 and figures["tile"]["negatives"] == 0
        assert header["negatives"] == 1 and "suppressed_by_negative" in header
        for name, row in figures.items():
            assert row["count"] == sum(1 for inst in header["instances"] if inst["product"] == name)
            assert isinstance(row["truth_count"], int)  # the mix's truth of the kind of that name
        assert header["count"] == len(header["instances"]) == sum(row["count"] for row in figures.values())
        assert header["truth_count"] == sum(row["truth_count"] for row in figures.values())  # as the count: all
        status = ask(proc.control.endpoint, {"cmd": "status"})["cameras"]["mix"]
        assert [p["name"] for p in status["products"]] == ["biscuit", "tile"]
        assert len(status["products"][0]["negatives"]) == 1 and status["products"][1]["negatives"] == []
        exposition = proc.metrics.exposition().decode()
        assert 'persense_product_objects{camera="mix",product="tile"}' in exposition
        assert 'persense_suppressed_by_negative_total{camera="mix",product="biscuit"}' in exposition
    finally:
        proc.stop()


def test_control_adds_changes_and_removes_products_and_negatives(tmp_path, mix_examples):
    # Products added while it runs need one worker (the workers' replicas hold each camera's one product).
    proc = _start(_stream(tmp_path, [{"name": "biscuit"}], max_products=2, workers=1))
    endpoint = proc.control.endpoint
    try:
        soap = _frames(mix_examples.support("soap"))
        added = ask(endpoint, {"cmd": "add_product", "product": "soap"}, *soap)
        assert added["ok"] and added["product"] == "soap" and added["cameras"] == ["mix"], added
        header = _results(proc, lambda h: "soap" in h.get("products", {}))
        assert header["products"]["soap"]["support_id"] == added["support_id"]

        # Bad requests: one line each, and nothing changes.
        def refused(request, *frames, match):
            reply = ask(endpoint, request, *frames)
            assert not reply["ok"] and match in reply["error"], reply
            assert "\n" not in reply["error"]

        refused({"cmd": "add_product", "product": "soap"}, *soap, match="already")
        refused({"cmd": "add_product", "product": "tile"}, *_frames(mix_examples.support("tile")),
                match="the most it takes")
        refused({"cmd": "add_product"}, *soap, match="needs \"product\"")
        refused({"cmd": "add_negative", "product": "soap"}, *soap, match="own example")
        refused({"cmd": "add_negative", "product": "nope"}, *soap, match="no product 'nope'")
        refused({"cmd": "remove_product", "product": "biscuit"}, match="default product")
        refused({"cmd": "set_support", "product": "nope"}, *soap, match="no product 'nope'")
        status = ask(endpoint, {"cmd": "status"})["cameras"]["mix"]["products"]
        assert [p["name"] for p in status] == ["biscuit", "soap"] and status[1]["negatives"] == []

        negative = ask(endpoint, {"cmd": "add_negative", "product": "biscuit"}, *_frames(mix_examples.support("candy")))
        assert negative["ok"], negative
        _results(proc, lambda h: h.get("products", {}).get("biscuit", {}).get("negatives") == 1)
        changed = ask(endpoint, {"cmd": "set_support", "product": "soap"}, *_frames(mix_examples.support("soap", 9)))
        assert changed["ok"] and changed["product"] == "soap"
        assert proc.products.support_id("mix", "soap") == changed["support_id"] != added["support_id"]
        assert proc.supports_of("mix", "soap").previous() is not None  # the console's Undo of that product
        assert ask(endpoint, {"cmd": "clear_negatives", "product": "biscuit"})["cleared"] == 1
        assert ask(endpoint, {"cmd": "remove_product", "product": "soap"})["ok"]
        header = _results(proc, lambda h: "products" not in h)
        assert "negatives" not in header and all("product" not in inst for inst in header["instances"])
        assert 'product="soap"' not in proc.metrics.exposition().decode()
    finally:
        proc.stop()


def test_several_products_keep_one_worker_and_several_workers_refuse_them(tmp_path, mix_examples):
    """stream.workers' replicas segment each camera's one product: configured products or negatives run on one
    worker where stream.workers is unset, and asking for more is refused in one line; a product or a negative
    added to a stream whose workers are several is refused in one line, and nothing changes."""
    from streamer.stream.parallel import ParallelWorker
    from streamer.stream.worker import InferenceWorker

    configured = [{"name": "biscuit", "support": {"negatives": [{"kind": "candy"}]}}, {"name": "soap"}]
    proc = _start(_stream(tmp_path, configured))
    try:
        assert isinstance(proc.worker, InferenceWorker)
    finally:
        proc.stop()
    with pytest.raises(UserError, match="set stream.workers: 1"):
        _start(_stream(tmp_path, configured, workers=2))
    proc = _start(_stream(tmp_path, [{"name": "biscuit"}], workers=2))
    try:
        assert isinstance(proc.worker, ParallelWorker)
        for request, example in (({"cmd": "add_product", "product": "soap"}, "soap"),
                                 ({"cmd": "add_negative"}, "candy")):
            reply = ask(proc.control.endpoint, request, *_frames(mix_examples.support(example)))
            assert not reply["ok"] and "stream.workers: 1" in reply["error"] and "\n" not in reply["error"], reply
        assert proc.products.pipeline("mix").names == ["biscuit"]
        assert not proc.products.pipeline("mix").product().negatives
    finally:
        proc.stop()


def test_bad_product_configurations_are_one_line_each(tmp_path):
    from streamer.config import load_config

    def first_line(raw: dict) -> str:
        path = tmp_path / "config.yaml"
        path.write_text(json.dumps(raw))
        with pytest.raises(UserError) as caught:
            load_config(path)
        assert "\n" not in str(caught.value)
        return str(caught.value)

    source = {"uri": SIM}
    assert "two products are named 'a'" in first_line(
        {"stream": {"sources": [{**source, "products": [{"name": "a"}, {"name": "a"}]}]}})
    assert "at most stream.max_products = 8" in first_line(
        {"stream": {"sources": [{**source, "products": [{"name": f"p{k}"} for k in range(9)]}]}})
    assert "either support" in first_line(
        {"stream": {"sources": [{**source, "support": {}, "products": [{"name": "a"}]}]}})
    assert "name" in first_line({"stream": {"sources": [{**source, "products": [{"name": "a b"}]}]}})
    stream = _stream(tmp_path, [{"name": "biscuit", "support": {"negatives": [{"kind": "nothing"}]}}])
    with pytest.raises(UserError, match="^camera mix: sim: no kind 'nothing'"):
        camera_products(stream.sources)


def _run_flow_past_a_line(tally) -> tuple[list, object, list]:
    """The flow simulator's exact items through `tally` (a line down the middle), each item named "even" or "odd"
    by its id (an item stays one product as it rides the belt) -> (the items passed, the last result, its
    instances)."""
    from streamer.simulator.flow import FlowSimulator
    from streamer.sources.base import Frame
    from streamer.types import Instance, SegmentationResult

    sim = FlowSimulator(160, 120, 12, 1, speed_px=3.0, seed=5)
    items, result, instances = [], None, []
    for i in range(0, 240, 2):
        scene, truth = sim.frame(i)
        instances = []
        for label in range(1, scene.count + 1):
            ys, xs = np.nonzero(scene.labels == label)
            box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
            mask = scene.labels[box[1]:box[3], box[0]:box[2]] == label
            product = "even" if int(truth.ids[label - 1]) % 2 == 0 else "odd"
            instances.append(Instance(label - 1, 1.0, box, mask, product=product))
        result = SegmentationResult(160, 120, instances, products={"even": {}, "odd": {}})
        items += tally.observe(Frame(scene.image, i, float(i), "cam0", scene.count, truth), result)
    return items, result, instances


def _line_tally():
    from streamer.stream.tally import CameraTally
    from streamer.stream.tally_config import TallyConfig

    return CameraTally(TallyConfig.model_validate({"lines": [{"points": [0.5, 0, 0.5, 1]}]}), "cam0")


def test_items_passing_a_line_are_counted_per_product():
    """The flow simulator's exact items, every other one named as a second product: the tally counts each."""
    from dataclasses import replace

    from streamer.simulator.flow import FlowSimulator
    from streamer.sources.base import Frame
    from streamer.types import SegmentationResult

    tally = _line_tally()
    items, result, instances = _run_flow_past_a_line(tally)
    passed = tally.passed_by_product
    assert set(passed) == {"even", "odd"} and sum(passed.values()) == tally.passed_total > 10
    assert result.tally["passed_by_product"] == passed
    assert {item.product for item in items} == {"even", "odd"} and all("product" in i.to_dict() for i in items)
    interval = tally.take_interval()
    assert interval["passed_by_product"] == passed
    plain = _line_tally()
    scene, truth = FlowSimulator(160, 120, 12, 1, speed_px=3.0, seed=5).frame(0)
    single = SegmentationResult(160, 120, [replace(inst, product=None) for inst in instances])
    plain.observe(Frame(scene.image, 0, 0.0, "cam0", scene.count, truth), single)
    assert "passed_by_product" not in single.tally and "passed_by_product" not in plain.take_interval()


def test_the_console_uploads_the_support_of_the_product_it_names(tmp_path, mix_examples):
    from console_helpers import http, multipart

    proc = _start(_stream(tmp_path, [{"name": "biscuit"}, {"name": "tile"}], console={"enabled": True},
                          tally={"lines": [{"points": [0.5, 0, 0.5, 1]}]}))
    try:
        base = proc.http.base_url
        tally = proc.tally.tallies["mix"]
        assert list(tally.product_specs) == ["tile"]  # a configured product's items: its own spec
        configured = tally.product_specs["tile"]
        before = {name: proc.products.support_id("mix", name) for name in ("biscuit", "tile")}
        image, mask = _frames(MixedConveyor(width=320, height=240, n_objects=30, seed=4).support("tile"))

        def upload(product: str) -> tuple[int, bytes]:
            body, headers = multipart({"image": image, "mask": mask}, {"product": product})
            status, _, data = http(base + "/api/support/upload", body, headers=headers, method="POST")
            return status, data

        assert upload("nope")[0] == 400  # no such product: nothing changes
        assert upload("no good")[0] == 400
        assert {name: proc.products.support_id("mix", name) for name in before} == before
        status, data = upload("tile")
        assert status == 200, data
        changed = json.loads(data)["support_id"]
        assert {name: proc.products.support_id("mix", name) for name in before} == {**before, "tile": changed}
        assert tally.product_specs["tile"] != configured  # the uploaded example's size
        status, headers, data = http(base + "/api/support.jpg?product=tile")
        assert status == 200 and headers.get("content-type", headers.get("Content-Type")) == "image/jpeg" and data[:2] == b"\xff\xd8"
        assert http(base + "/api/support.jpg?product=nope")[0] == 400
    finally:
        proc.stop()


def test_each_products_items_are_judged_against_its_own_spec():
    """The default product's example is twice the items' size, the other product's the items' size: the other
    product's items are in its spec, the default product's are out of the camera's (the default one's)."""
    tally = _line_tally()

    def disk(diameter: int) -> np.ndarray:  # the items' diameters are 26-31 px
        return cv2.circle(np.zeros((80, 80), np.uint8), (40, 40), diameter // 2, 1, -1) > 0

    tally.set_support(disk(56))
    tally.set_product_support("odd", disk(28))
    items, _, _ = _run_flow_past_a_line(tally)
    judged = {name: [item.in_spec for item in items if item.product == name and item.in_spec is not None]
              for name in ("even", "odd")}
    assert len(judged["even"]) >= 3 and len(judged["odd"]) >= 3, judged
    assert not any(judged["even"]) and sum(judged["odd"]) >= 0.8 * len(judged["odd"]), judged
    interval = tally.take_interval()
    assert interval["specs_by_product"]["odd"]["diameter"]["max"] < interval["specs"]["diameter"]["min"]
    tally.forget_product("odd")
    assert "specs_by_product" not in tally.take_interval()
