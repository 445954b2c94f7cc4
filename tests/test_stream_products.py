"""A product per camera in one process: each camera's own support and gate over one shared engine set, its own
support_id in its results, and set_support with a camera id on the control socket."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import zmq

from control_client import ask
from streamer.config import Config, EnginesConfig, GateConfig
from streamer.engine_factory import build_engines
from streamer.gates import NoGate, RoiGate, build_gate
from streamer.simulator import ConveyorSimulator
from streamer.stream.config import StreamConfig
from streamer.stream.processor import StreamProcessor
from streamer.stream.products import CameraProducts
from streamer.stream.support import PrototypeCache

SIM = "sim:?objects=8&distractors=2&width=160&height=120&fps=6&seed={seed}"


def _support(seed: int):
    return ConveyorSimulator(160, 120, 8, 2, seed=seed).support()


def _png(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", image)[1].tobytes()


def test_cameras_with_one_support_share_its_prototype_and_every_camera_shares_the_models(tmp_path):
    engines = build_engines(EnginesConfig())
    calls = []
    encode = engines.encoder.encode
    engines.encoder.encode = lambda image: calls.append(image.shape) or encode(image)
    gates = {"p1": NoGate(), "p2": NoGate(), "p3": build_gate(GateConfig(kind="roi", roi=(0, 0, 0.5, 1)))}
    products = CameraProducts(engines, Config().pipeline, gates, PrototypeCache(None))
    first, second = _support(1), _support(2)
    ids = {camera: products.apply(camera, *support).support_id
           for camera, support in (("p1", first), ("p2", second), ("p3", second))}
    assert ids["p2"] == ids["p3"] != ids["p1"]
    assert len(calls) == 2  # p3 took p2's prototype without an encoder pass
    assert {id(p.engines) for p in products.pipelines.values()} == {id(engines)}
    assert len({id(p._encoder_lock) for p in products.pipelines.values()}) == 1
    assert isinstance(products.pipeline("p3").gate, RoiGate) and isinstance(products.pipeline("p1").gate, NoGate)


def _stream(tmp_path, **overrides) -> StreamConfig:
    return StreamConfig.model_validate({
        "sources": [{"uri": SIM.format(seed=1), "camera_id": "p1"},
                    {"uri": SIM.format(seed=2), "camera_id": "p2"},
                    {"uri": SIM.format(seed=2), "camera_id": "p3", "gate": {"kind": "roi", "roi": [0, 0, 0.5, 1]}}],
        "publish": {"endpoint": "tcp://127.0.0.1:*"},
        "control": {"endpoint": "tcp://127.0.0.1:*"},
        "metrics": {"port": None},
        "cache_dir": str(tmp_path),
        **overrides,
    })


def _processor(stream: StreamConfig) -> StreamProcessor:
    return StreamProcessor(Config(stream=stream), build_engines(EnginesConfig()), _support(2),
                           camera_supports={"p1": _support(1)})


@pytest.fixture
def running(tmp_path):
    proc = _processor(_stream(tmp_path))
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def _request(proc, request: dict, *frames: bytes) -> dict:
    return ask(proc.control.endpoint, request, *frames)


def _results(proc, wanted: dict[str, str], timeout_s: float = 60.0) -> dict[str, set]:
    """camera -> the support_ids of its results, read until every camera sent one with `wanted[camera]`."""
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SUBSCRIBE, b"persense/")
    sock.connect(proc.publisher.endpoint)
    seen: dict[str, set] = {}
    try:
        while sock.poll(int(timeout_s * 1000)):
            topic, header, *_ = sock.recv_multipart()
            if topic.endswith(b"/result"):
                message = json.loads(header)
                seen.setdefault(message["camera"], set()).add(message["support_id"])
                if all(wanted[c] in seen.get(c, ()) for c in wanted):
                    break
    finally:
        sock.close(0)
    return seen


def test_each_camera_publishes_its_own_support_and_set_support_by_camera_changes_only_it(running):
    proc = running
    pipelines = proc.products.pipelines
    assert pipelines["p1"].gate is pipelines["p2"].gate and isinstance(pipelines["p3"].gate, RoiGate)
    status = _request(proc, {"cmd": "status"})
    ids = {camera: row["support_id"] for camera, row in status["cameras"].items()}
    assert ids["p2"] == ids["p3"] != ids["p1"]
    seen = _results(proc, ids)
    assert all(ids[c] in seen[c] for c in ids), seen

    image, mask = _support(5)
    frames = (_png(cv2.cvtColor(image, cv2.COLOR_RGB2BGR)), _png(mask.astype(np.uint8) * 255))
    reply = _request(proc, {"cmd": "set_support", "camera": "p2"}, *frames)
    assert reply["ok"] and reply["cameras"] == ["p2"], reply
    after = {camera: row["support_id"] for camera, row in _request(proc, {"cmd": "status"})["cameras"].items()}
    assert after == {**ids, "p2": reply["support_id"]}
    assert reply["support_id"] in _results(proc, {"p2": reply["support_id"]})["p2"]

    unknown = _request(proc, {"cmd": "set_support", "camera": "nope"}, *frames)
    assert not unknown["ok"] and "unknown camera 'nope'" in unknown["error"]
    everyone = _request(proc, {"cmd": "set_support"}, *frames)
    assert everyone["ok"] and everyone["cameras"] == ["p1", "p2", "p3"]
    final = _request(proc, {"cmd": "status"})["cameras"]
    assert {row["support_id"] for row in final.values()} == {reply["support_id"]}


def test_camera_supports_are_read_from_each_sources_files_and_a_bad_one_names_its_camera(tmp_path):
    from streamer.errors import UserError
    from streamer.stream.support import camera_supports

    image, mask = _support(3)
    cv2.imwrite(str(tmp_path / "one.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(tmp_path / "one_mask.png"), mask.astype(np.uint8) * 255)
    stream = StreamConfig.model_validate({"sources": [
        {"uri": SIM.format(seed=1), "camera_id": "own",
         "support": {"image": str(tmp_path / "one.png"), "mask": str(tmp_path / "one_mask.png")}},
        {"uri": SIM.format(seed=2), "camera_id": "shared"}]})
    supports = camera_supports(stream.sources)
    assert list(supports) == ["own"]
    assert np.array_equal(supports["own"][0], image) and np.array_equal(supports["own"][1], mask)
    stream.sources[0].support.mask = tmp_path / "missing.png"
    with pytest.raises(UserError, match="^camera own: .*missing.png"):
        camera_supports(stream.sources)


def test_the_console_changes_and_undoes_the_support_of_the_camera_it_names(tmp_path):
    from console_helpers import http, multipart, post

    proc = _processor(_stream(tmp_path, metrics={"port": 0}))
    proc.start()
    try:
        base = proc.http.base_url
        before = {camera: proc.products.support_id(camera) for camera in proc.cameras}
        image, mask = _support(5)
        body, headers = multipart({"image": _png(cv2.cvtColor(image, cv2.COLOR_RGB2BGR)),
                                   "mask": _png(mask.astype(np.uint8) * 255)}, {"camera": "p3"})
        status, _, data = http(base + "/api/support/upload", body, headers=headers, method="POST")
        assert status == 200, data
        changed = json.loads(data)["support_id"]
        assert {c: proc.products.support_id(c) for c in proc.cameras} == {**before, "p3": changed}
        assert post(base + "/api/support/undo", {"camera": "nope"})[0] == 400
        assert post(base + "/api/support/undo", {"camera": "p1"})[0] == 400  # p1 has nothing to undo
        status, reply = post(base + "/api/support/undo", {"camera": "p3"})
        assert status == 200 and reply["support_id"] == before["p3"]
        assert {c: proc.products.support_id(c) for c in proc.cameras} == before
    finally:
        proc.stop()
