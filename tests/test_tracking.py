"""Tracking, counting lines and measurements (streamer.tracking): pure functions over arrays."""

import cv2
import numpy as np
import pytest

from streamer.simulator.flow import FlowSimulator
from streamer.tracking.crossing import BACKWARD, FORWARD, LineCounter, side
from streamer.tracking.measure import COLUMN, measure, measure_one, to_mm, touches_border
from streamer.tracking.tracker import BeltTracker, TrackerParams, belt_shift

LINE = (80.0, 0.0, 80.0, 120.0)


def _run(step, frames=240, params=TrackerParams(), hide=None):
    """Track the flow simulator's true centres every `step` frames -> (id switches, counter, truth, tracker)."""
    sim = FlowSimulator(160, 120, 12, 0, speed_px=3.0, seed=4)
    tracker, counter = BeltTracker(params), LineCounter(LINE)
    owner, switches = {}, 0
    for i in range(0, frames, step):
        _, truth = sim.frame(i)
        keep = np.ones(len(truth.ids), bool) if hide is None else ~hide(i, truth)
        ids, ended = tracker.update(i, truth.centres[keep], truth.diameters_px[keep])
        for item, track in zip(truth.ids[keep].tolist(), ids.tolist()):
            switches += item in owner and owner[item] != track
            owner[item] = track
        counter.update(ids, truth.centres[keep])
        counter.forget(ended)
    return switches, counter, truth, tracker


@pytest.mark.parametrize("step", [1, 4])
def test_ids_persist_and_every_item_is_counted_once(step):
    switches, counter, truth, tracker = _run(step)
    assert switches == 0
    assert counter.counts[FORWARD] == truth.passed(LINE) > 20
    assert counter.counts[BACKWARD] == 0
    assert tracker.velocity == pytest.approx([3.0, 0.0], abs=0.05)


def test_a_configured_velocity_is_used_as_given():
    switches, counter, truth, tracker = _run(4, params=TrackerParams(velocity=(3.0, 0.0)))
    assert switches == 0 and tracker.velocity.tolist() == [3.0, 0.0]
    # A wrong configured velocity (the belt runs the other way) loses the tracks: it is really used.
    switches, _, _, _ = _run(4, params=TrackerParams(velocity=(-3.0, 0.0)))
    assert switches > 10


def test_an_item_occluded_for_a_few_frames_keeps_its_id_and_is_counted_once():
    # Every item is hidden while its centre is within 15 px before the line: three processed frames at step 3.
    def hide(i, truth):
        return (truth.centres[:, 0] > 62) & (truth.centres[:, 0] < 77)

    switches, counter, truth, _ = _run(3, hide=hide)
    assert switches == 0
    assert counter.counts[FORWARD] == truth.passed(LINE)


def test_belt_shift_finds_the_common_displacement_among_dense_neighbours():
    rng = np.random.default_rng(0)
    grid = np.stack(np.meshgrid(np.arange(10) * 20.0, np.arange(8) * 20.0), -1).reshape(-1, 2)
    moved = grid + [7.0, 1.0] + rng.normal(0, 0.3, grid.shape)
    assert belt_shift(grid, moved, radius=21, bin_px=2.5) == pytest.approx([7.0, 1.0], abs=0.3)
    assert belt_shift(grid, grid[:0], 21, 2.5) is None


def test_stopped_and_jittering_items_are_counted_once():
    counter = LineCounter((50.0, 0.0, 50.0, 100.0))
    # Item 1 rides up to the line and stops on it; item 2 jitters back and forth across it for 50 frames.
    for x in [40, 45, 49.8, 50, 50, 50.2, 50, 49.9, 50.3, 49.6, 50.1, 55, 60]:
        counter.update(np.array([1]), np.array([[x, 30.0]]))
    assert counter.counts == {FORWARD: 1, BACKWARD: 0}
    for k in range(50):
        counter.update(np.array([2]), np.array([[52.0 if k % 2 else 48.0, 60.0]]))
    assert counter.counts == {FORWARD: 2, BACKWARD: 0}
    # Crossing the other way counts backward; beyond the segment's end nothing counts.
    counter.update(np.array([3, 4]), np.array([[60.0, 10.0], [40.0, 150.0]]))
    counter.update(np.array([3, 4]), np.array([[40.0, 10.0], [60.0, 150.0]]))
    assert counter.counts == {FORWARD: 2, BACKWARD: 1}
    assert side(np.array([[60.0, 0.0]]), (50.0, 0.0, 50.0, 100.0))[0] == pytest.approx(10.0)


def _ellipse(a, b, angle, shape=(80, 80)):
    mask = np.zeros(shape, np.uint8)
    cv2.ellipse(mask, (40, 40), (a, b), angle, 0, 360, 1, -1)
    return mask.astype(bool)


def test_measurements_of_an_ellipse_and_a_notched_square():
    image = np.zeros((80, 80, 3), np.uint8)
    image[...] = (200, 120, 30)
    row = measure_one(_ellipse(30, 15, 30), image)
    assert row[COLUMN["major_axis"]] == pytest.approx(60, rel=0.03)
    assert row[COLUMN["minor_axis"]] == pytest.approx(30, rel=0.05)
    assert row[COLUMN["orientation"]] == pytest.approx(30, abs=1.5)
    assert row[COLUMN["diameter"]] == pytest.approx(2 * np.sqrt(30 * 15), rel=0.03)
    assert row[COLUMN["solidity"]] > 0.97
    assert row[[COLUMN["red"], COLUMN["green"], COLUMN["blue"]]].tolist() == [200, 120, 30]
    notched = np.zeros((80, 80), bool)
    notched[10:70, 10:70] = True
    notched[10:40, 10:40] = False  # an L: its hull cuts the missing corner diagonally (3150 px²)
    assert measure_one(notched, image)[COLUMN["solidity"]] == pytest.approx(2700 / 3150, abs=0.02)
    assert measure_one(np.zeros((5, 5), bool), image[:5, :5])[COLUMN["area"]] == 0


def test_measure_table_millimetres_and_border():
    image = np.zeros((100, 100, 3), np.uint8)
    masks = [np.ones((20, 20), bool)]
    table, centres = measure(image, np.array([[0, 0, 20, 20]]), masks)
    assert table[0, COLUMN["area"]] == 400 and centres[0].tolist() == [9.5, 9.5]
    mm = to_mm(table, 2.0)
    assert mm[0, COLUMN["area"]] == pytest.approx(100.0)
    assert mm[0, COLUMN["diameter"]] == pytest.approx(table[0, COLUMN["diameter"]] / 2)
    assert to_mm(table, None) is table
    assert touches_border(np.array([[0, 0, 20, 20], [10, 10, 30, 30], [80, 80, 100, 100]]), 100, 100).tolist() == [
        True, False, True]


def test_frames_without_any_detection_end_no_track():
    # The presence gate answers 0 for 10 processed frames (more than max_missed): no item is counted twice or lost.
    def hide(i, truth):
        return np.full(len(truth.ids), 90 <= i < 120)

    switches, counter, truth, _ = _run(3, hide=hide)
    assert switches == 0
    assert counter.counts[FORWARD] == truth.passed(LINE)


def test_a_frame_the_segmenter_mostly_missed_does_not_move_the_belt_velocity():
    tracker = BeltTracker()
    grid = np.stack(np.meshgrid(np.arange(6) * 30.0 + 20, np.arange(4) * 30.0 + 20), -1).reshape(-1, 2)
    for k in range(4):
        tracker.update(k, grid + [5.0 * k, 0.0], np.full(len(grid), 28.0))
    assert tracker.velocity == pytest.approx([5.0, 0.0])
    # Two detections, each 10 px off its prediction (within the gate): too few to say the belt changed.
    tracker.update(4, grid[:2] + [30.0, 10.0], np.full(2, 28.0))
    assert tracker.velocity == pytest.approx([5.0, 0.0])


def _disk(radius, cx, cy, size=100):
    """The exact digitisation of a disk: the pixels whose centre lies inside it."""
    y, x = np.mgrid[:size, :size]
    return (x - cx) ** 2 + (y - cy) ** 2 <= radius ** 2


def test_diameters_of_exact_disks_are_unbiased():
    # Disks of random radii at random sub-pixel centres, all measured in one pass.
    rng = np.random.default_rng(11)
    radii = rng.uniform(6, 40, 60)
    masks = [_disk(r, *rng.uniform(45, 55, 2)) for r in radii]
    boxes = np.array([[0, 0, 100, 100]] * len(masks))
    table, centres = measure(np.zeros((100, 100, 3), np.uint8), boxes, masks)
    errors = table[:, COLUMN["diameter"]] / (2 * radii) - 1
    assert abs(np.median(errors)) < 0.002 and np.abs(errors).max() < 0.02
    # The ellipse of a disk is the disk: both axes are its diameter.
    assert np.median(np.abs(table[:, COLUMN["major_axis"]] / (2 * radii) - 1)) < 0.01
    assert np.median(np.abs(table[:, COLUMN["minor_axis"]] / (2 * radii) - 1)) < 0.01
    assert np.all(table[:, COLUMN["solidity"]] > 0.97)


@pytest.mark.parametrize("a, b, angle", [(30, 15, 30), (35, 10, -60), (25, 24, 0), (40, 8, 89)])
def test_ellipse_axes_and_orientation_of_exact_ellipses(a, b, angle):
    y, x = np.mgrid[:100, :100].astype(float)
    t = np.radians(angle)
    u, v = (x - 50.3) * np.cos(t) + (y - 49.6) * np.sin(t), -(x - 50.3) * np.sin(t) + (y - 49.6) * np.cos(t)
    mask = (u / a) ** 2 + (v / b) ** 2 <= 1
    row = measure_one(mask, np.zeros((100, 100, 3), np.uint8))
    assert row[COLUMN["major_axis"]] == pytest.approx(2 * a, rel=0.01)
    assert row[COLUMN["minor_axis"]] == pytest.approx(2 * b, rel=0.02)
    assert row[COLUMN["area"]] == pytest.approx(np.pi * a * b, rel=0.01)
    if a > 1.1 * b:  # a near-circle has no orientation to speak of
        assert row[COLUMN["orientation"]] == pytest.approx(angle, abs=1.0)


def test_one_pass_figures_equal_each_mask_measured_alone():
    # Masks of many sizes and shapes (holes, several parts, empty, one pixel) measured together and one by one.
    rng = np.random.default_rng(5)
    masks = [rng.random(tuple(rng.integers(1, 30, 2))) < 0.6 for _ in range(40)]
    masks += [np.zeros((4, 3), bool), np.ones((1, 1), bool)]
    boxes = np.array([[3 * k, 2 * k, 3 * k + m.shape[1], 2 * k + m.shape[0]] for k, m in enumerate(masks)])
    image = rng.integers(0, 256, (200, 200, 3), dtype=np.uint8)
    table, centres = measure(image, boxes, masks)
    for k, (mask, (x0, y0, x1, y1)) in enumerate(zip(masks, boxes)):
        alone = measure_one(mask, image[y0:y1, x0:x1])
        np.testing.assert_allclose(table[k], alone, rtol=1e-9, atol=1e-9, equal_nan=True)
        ys, xs = np.nonzero(mask)
        assert table[k, COLUMN["area"]] == len(xs)
        if len(xs):
            assert centres[k] == pytest.approx([xs.mean() + x0, ys.mean() + y0])
            assert table[k, COLUMN["red"]] == pytest.approx(image[y0:y1, x0:x1][mask][:, 0].mean())
        else:
            assert np.isnan(table[k, COLUMN["diameter"]]) and centres[k].tolist() == [(x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2]


def test_flow_simulator_items_measure_their_true_diameter_exactly():
    sim = FlowSimulator(320, 240, 20, 0, speed_px=3.0, seed=2)
    scene, truth = sim.frame(150)
    masks, boxes = [], []
    for label in range(1, scene.count + 1):
        ys, xs = np.nonzero(scene.labels == label)
        boxes.append((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
        masks.append(scene.labels[ys.min():ys.max() + 1, xs.min():xs.max() + 1] == label)
    table, centres = measure(scene.image, np.array(boxes), masks)
    whole = ~touches_border(np.array(boxes), 320, 240)
    # Each whole item against the truth item nearest its centroid.
    nearest = np.argmin(np.hypot(*(centres[:, None, :] - truth.centres[None, :, :]).transpose(2, 0, 1)), axis=1)
    ratio = table[whole, COLUMN["diameter"]] / truth.diameters_px[nearest[whole]]
    # A neighbour pasted over an item's edge takes pixels from it (never adds): the rest measure exactly.
    assert whole.sum() > 10 and np.all(ratio <= 1 + 1e-9)
    assert np.count_nonzero(np.abs(ratio - 1) < 1e-9) >= 0.6 * len(ratio)
