"""The stream's tally (streamer.stream.tally, tally_sink): exact segmentations of the flow simulator in, counts,
item figures, specs, messages and metrics out."""

import json

import numpy as np
import pytest
from pydantic import ValidationError

from streamer.config import Config
from streamer.schema import result_to_dict
from streamer.simulator.flow import FlowSimulator
from streamer.sources.base import Frame
from streamer.stream.metrics import StreamMetrics
from streamer.stream.tally import CameraTally, TrackSamples
from streamer.stream.tally_config import TallyConfig
from streamer.stream.tally_sink import TallySink
from streamer.types import Instance, SegmentationResult

PX_PER_MM = 2.0


def _result(scene) -> SegmentationResult:
    """The scene's exact segmentation as a pipeline result."""
    instances = []
    for label in range(1, scene.count + 1):
        ys, xs = np.nonzero(scene.labels == label)
        x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        mask = scene.labels[y0:y1, x0:x1] == label
        instances.append(Instance(label - 1, 1.0, (int(x0), int(y0), int(x1), int(y1)), mask))
    h, w = scene.labels.shape
    return SegmentationResult(w, h, instances)


def _frames(step, n=240, **kw):
    sim = FlowSimulator(160, 120, 12, 1, speed_px=3.0, seed=5, px_per_mm=PX_PER_MM, **kw)
    for i in range(0, n, step):
        scene, truth = sim.frame(i)
        yield Frame(scene.image, i, float(i), "cam0", scene.count, truth), _result(scene), sim


def _config(**kw):
    base = {"lines": [{"points": [0.5, 0, 0.5, 1]}], "calibration": {"px_per_mm": PX_PER_MM}, "interval_s": 1.0}
    return TallyConfig.model_validate({**base, **kw})


@pytest.mark.parametrize("step", [1, 4])
def test_passed_equals_truth_and_diameters_are_the_items_own(step):
    tally = None
    items = []
    for frame, result, sim in _frames(step):
        if tally is None:
            tally = CameraTally(_config(), "cam0", sim.support()[1])
        items += tally.observe(frame, result)
        assert all(i.track_id is not None and i.measurements is not None for i in result.instances)
    assert tally.passed_total == tally.truth_passed_total == frame.truth.passed((80, 0, 80, 120)) > 20
    assert result.tally["passed_total"] == tally.passed_total and result.tally["tracks"] > 0
    measured = [(i.figures["diameter"], i.truth_diameter) for i in items if i.figures]
    assert len(measured) > 15
    errors = [abs(m - t) / t for m, t in measured]
    assert np.median(errors) < 0.03
    # The default spec is the support's diameter +- 20%: the simulator's items (about +-10%) are nearly all in it.
    assert sum(i.in_spec is True for i in items) >= 0.8 * len(items)


def test_configured_specs_count_out_of_spec_items_and_fill_the_histogram():
    frames = list(_frames(2))
    tally = CameraTally(_config(specs={"diameter": {"min": 0, "max": 1}}), "cam0")
    for frame, result, _ in frames:
        tally.observe(frame, result)
    doc = tally.take_interval()
    assert doc["out_of_spec_total"] == doc["measured_total"] > 0
    assert all(item["in_spec"] is False for item in doc["items"])
    hist = doc["size_histogram"]
    assert hist["below"] + sum(hist["counts"]) + hist["above"] == doc["measured_total"]
    assert doc["units"] == "mm" and doc["passed"] == doc["passed_total"]
    again = tally.take_interval()
    assert again["passed"] == 0 and again["passed_total"] == doc["passed_total"] and again["items"] == []


def test_tally_sink_publishes_tally_messages_and_metrics():
    sent = []
    clock = iter(range(1000)).__next__
    metrics = StreamMetrics(["cam0"])

    class Sink:
        results = []

        def submit(self, frame, result, support_id, wait=False):
            self.results.append(result_to_dict(result, include_masks=False))
            return True

    sink = Sink()
    tally_sink = TallySink(sink, _config(interval_s=10), ["cam0"], metrics, lambda cam, parts: sent.append(parts),
                           clock=lambda: float(clock()))
    for frame, result, _ in _frames(3, n=180):
        assert tally_sink.submit(frame, result, "s1")
    header = sink.results[-1]
    assert header["passed_total"] > 0 and "truth_passed_total" in header
    assert {"track_id", "measure"} <= set(header["instances"][0])
    assert sent and all(parts[0] == b"persense/cam0/tally" for parts in sent)
    docs = [json.loads(parts[1]) for parts in sent]
    assert docs[0]["schema"] == "persense.tally/1" and [d["seq"] for d in docs] == list(range(len(docs)))
    assert sum(d["passed"] for d in docs) == docs[-1]["passed_total"]
    text = metrics.exposition().decode()
    counted = metrics.registry.get_sample_value("persense_items_total",
                                                {"camera": "cam0", "direction": "forward", "spec": "unknown"})
    assert counted == sum(len(d["items"]) for d in docs) > 0  # no support, no spec: unknown
    assert 'persense_items_total{camera="cam0",direction="backward",spec="out"} 0.0' in text
    assert "persense_active_tracks" in text and "persense_item_diameter_bucket" in text


def test_a_failing_tally_still_passes_the_result_on():
    class Sink:
        n = 0

        def submit(self, frame, result, support_id, wait=False):
            self.n += 1
            return True

    sink = Sink()
    tally_sink = TallySink(sink, _config(), ["cam0"], StreamMetrics(["cam0"]), lambda c, p: None)
    bad = SegmentationResult(10, 10, [Instance(0, 1.0, (0, 0, 5, 5), np.ones((2, 2), bool))])  # mask/box mismatch
    frame = Frame(np.zeros((10, 10, 3), np.uint8), 0, 0.0, "cam0")
    tally_sink.tallies["cam0"].observe = lambda f, r: 1 / 0
    assert tally_sink.submit(frame, bad, "s")
    assert sink.n == 1


@pytest.mark.parametrize("tally", [
    {"lines": [{"points": [0.5, 0, 0.5, 1.5]}]},
    {"lines": [{"points": [0.2, 0.3, 0.2, 0.3]}]},
    {"specs": {"diameter": {"min": 70, "max": 40}}},
    {"specs": {"weight": {"min": 1}}},
    {"calibration": {"px_per_mm": 0}},
    {"calibration": {"reference_px": 10}},
])
def test_bad_tally_settings_are_refused(tally):
    with pytest.raises(ValidationError):
        Config.model_validate({"stream": {"tally": tally}})


def test_a_pixel_line_outside_the_frame_counts_nothing_and_says_so(caplog):
    config = TallyConfig.model_validate({"lines": [{"points": [500, 0, 500, 100], "normalized": False}]})
    frame, result, _ = next(_frames(1))
    tally = CameraTally(config, "cam0")
    tally.observe(frame, result)
    assert tally.lines == [] and "outside" in caplog.text


def test_track_samples_spread_over_the_whole_track_within_their_capacity():
    samples = TrackSamples(8)
    for view in range(1000):
        if samples.take():
            samples.add(np.array([float(view)]))
    values = [row[0] for row in samples.rows]
    assert 4 <= len(values) <= 8 and values == sorted(values)
    assert values[0] == 0 and values[-1] > 800  # the first views and the last ones
    assert np.median(values) == pytest.approx(500, abs=130)


def _disk_instance(cx, cy, r):
    y, x = np.mgrid[:100, :200]
    full = (x - cx) ** 2 + (y - cy) ** 2 <= r * r
    ys, xs = np.nonzero(full)
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    return Instance(0, 1.0, box, full[box[1]:box[3], box[0]:box[2]])


def test_a_passed_item_takes_the_median_over_its_whole_track_not_its_first_views():
    # One item rides across the line; seen small (r 10) in its first 25 views and large (r 14) in its last 60.
    # Then another item sits still elsewhere until the first one's track ends.
    tally = CameraTally(TallyConfig.model_validate({"lines": [{"points": [0.5, 0, 0.5, 1]}]}), "cam0")
    image = np.zeros((100, 200, 3), np.uint8)
    finished = []
    for i in range(85):
        result = SegmentationResult(200, 100, [_disk_instance(16 + 2 * i, 40, 10 if i < 25 else 14)])
        finished += tally.observe(Frame(image, i, float(i), "cam0"), result)
    for i in range(85, 100):
        result = SegmentationResult(200, 100, [_disk_instance(30, 80, 8)])
        finished += tally.observe(Frame(image, i, float(i), "cam0"), result)
    assert len(finished) == 1 and finished[0].direction == "forward"
    assert finished[0].figures["diameter"] == pytest.approx(28, rel=0.02)
    assert finished[0].figures["solidity"] > 0.95
