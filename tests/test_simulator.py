import numpy as np
import pytest

from streamer.simulator import ConveyorSimulator, default_radius, render_scene, render_support


def _mean_rgb(image, mask):
    return image[mask].astype(np.float64).mean(axis=0)


@pytest.mark.parametrize("n", [10, 60, 200])
def test_scene_ground_truth_is_consistent(n):
    scene = render_scene(n_objects=n, n_distractors=5, seed=3)
    assert scene.image.shape == (480, 640, 3) and scene.image.dtype == np.uint8
    assert scene.labels.shape == (480, 640) and scene.labels.dtype == np.int32
    assert scene.count == n
    ids = np.unique(scene.labels)
    assert ids.tolist() == list(range(scene.count + 1))
    # Targets and distractors never share a pixel.
    assert not np.any((scene.labels > 0) & scene.distractors)
    assert scene.distractors.any()


def test_scene_is_deterministic_by_seed():
    a, b, c = render_scene(seed=5), render_scene(seed=5), render_scene(seed=6)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.image, c.image)


def test_targets_and_distractors_differ_in_colour_and_targets_touch():
    scene = render_scene(seed=1)
    target = _mean_rgb(scene.image, scene.labels > 0)
    other = _mean_rgb(scene.image, scene.distractors)
    assert target[0] > target[2] + 60  # amber: red well above blue
    assert other[2] > other[0] + 60  # blue-teal
    # Touching: many targets have a pixel 4-adjacent to another target's label.
    lab = scene.labels
    right = (lab[:, :-1] > 0) & (lab[:, 1:] > 0) & (lab[:, :-1] != lab[:, 1:])
    down = (lab[:-1] > 0) & (lab[1:] > 0) & (lab[:-1] != lab[1:])
    touching = set(lab[:, :-1][right]) | set(lab[:-1][down])
    assert len(touching) >= scene.count // 4


def test_occlusion_hides_pixels():
    # The private world knows each object's full (unoccluded) sprite area; labels keep visible pixels only.
    from streamer.simulator.scene import _World

    world = _World(640, 480, 60, 8, 2, True, True, None, None)
    scene = world.render(0.0, 0)
    full = np.array([s.mask.sum() for s in world.sprites])[~world.kinds]
    visible = np.bincount(scene.labels.ravel(), minlength=scene.count + 1)[1:]
    fraction = visible / full
    assert fraction.max() <= 1.0
    assert np.sum(fraction < 0.8) >= 2  # some targets partly occluded
    no_occlusion = _World(640, 480, 60, 8, 2, True, False, None, None)
    scene = no_occlusion.render(0.0, 0)
    full = np.array([s.mask.sum() for s in no_occlusion.sprites])[~no_occlusion.kinds]
    assert np.min(np.bincount(scene.labels.ravel())[1:] / full) > 0.85


def test_object_radius_follows_density():
    assert default_radius(640, 480, 500, 0) < default_radius(640, 480, 50, 0) < default_radius(640, 480, 10, 0)
    big = render_scene(1920, 1080, n_objects=500, n_distractors=0, seed=0)
    assert big.count == 500 and not big.distractors.any()


def test_support_is_one_target_of_the_same_kind():
    image, mask = render_support(seed=0, object_radius=20, width=160, height=120)
    assert image.shape == (120, 160, 3) and mask.shape == (120, 160) and mask.dtype == bool
    area = mask.sum()
    assert 0.7 * np.pi * 400 < area < 1.5 * np.pi * 400
    scene = render_scene(seed=0)
    assert np.abs(_mean_rgb(image, mask) - _mean_rgb(scene.image, scene.labels > 0)).max() < 30


def test_conveyor_moves_objects_along_x_and_keeps_counts():
    sim = ConveyorSimulator(n_objects=60, n_distractors=8, speed_px=4.0, seed=1)
    counts = []
    for i in range(0, 400, 10):
        counts.append(sim.frame(i).count)
    assert 50 <= np.mean(counts) <= 70 and min(counts) > 40
    a, b = sim.frame(20), sim.frame(21)
    # Frame 21 is frame 20 shifted right by 4 pixels (noise aside).
    diff_shifted = np.abs(a.image[:, 100:500].astype(int) - b.image[:, 104:504].astype(int)).mean()
    diff_static = np.abs(a.image[:, 100:500].astype(int) - b.image[:, 100:500].astype(int)).mean()
    assert diff_shifted < 8 < diff_static
    assert np.array_equal(sim.frame(20).labels, a.labels)
    support_image, support_mask = sim.support()
    assert support_mask.any() and support_image.shape[:2] == support_mask.shape
