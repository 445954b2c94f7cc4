"""The embedded engines' building blocks on drawn shapes whose answers are known exactly."""

import cv2
import numpy as np
import pytest

from engines.embedded.dmg import (
    _PEAK_CLIMBS,
    climb,
    climb_to_peak,
    colour_matches,
    correlation_threshold,
    detect_objects,
)
from engines.embedded.features import compute_descriptors
from engines.embedded.rays import group_prompts, outlines, radial_gradients, rasterise
from engines.embedded.rims import RimField, rim_map


def discs(centres, radius, size=(120, 160), value=200, background=40, colour=None):
    """uint8 RGB image of filled discs (grid == frame: the images are small, stride 1)."""
    image = np.full(size + (3,), background, np.uint8)
    for x, y in centres:
        cv2.circle(image, (int(x), int(y)), int(radius), colour or (value, value, value), -1, lineType=cv2.LINE_AA)
    return image


def test_an_outline_from_the_centre_finds_the_discs_radius():
    image = discs([(80, 60)], 15)
    desc = compute_descriptors(image)
    assert desc.stride == 1
    shapes = outlines(desc.smoothed(0.8), np.array([[80.0, 60.0]]), max_radius=40)
    assert abs(shapes.radius[0] - 15) <= 1.5
    assert np.all(np.abs(shapes.ray_radius[0] - 15) <= 1.5)


def test_an_off_centre_prompt_still_outlines_the_whole_disc():
    image = discs([(80, 60)], 15)
    desc = compute_descriptors(image)
    cells = np.array([[84.0, 57.0]])
    shapes = outlines(desc.smoothed(0.8), cells, max_radius=40, radius_hint=15)
    labels = rasterise(desc.grid_hw, cells, shapes, np.array([0]))
    truth = np.zeros(desc.grid_hw, np.uint8)
    cv2.circle(truth, (80, 60), 15, 1, -1)
    iou = np.logical_and(labels == 1, truth).sum() / np.logical_or(labels == 1, truth).sum()
    assert iou > 0.8


@pytest.mark.parametrize("radius", [4, 7, 15, 30])
def test_a_mask_has_its_outlines_area_not_a_cell_more_all_round(radius):
    """Masks were a cell too wide all round (7-18% in diameter): each item's size on the bus was wrong."""
    size = (4 * radius + 20, 4 * radius + 20)
    image = discs([(size[1] // 2, size[0] // 2)], radius, size=size)
    desc = compute_descriptors(image)
    cells = np.array([[size[1] // 2, size[0] // 2]], np.float64)
    shapes = outlines(desc.smoothed(0.8), cells, max_radius=2 * radius, radius_hint=radius)
    labels = rasterise(desc.grid_hw, cells, shapes, np.array([0]))
    drawn = np.count_nonzero(discs([(size[1] // 2, size[0] // 2)], radius, size=size, value=255, background=0)[..., 0] > 127)
    diameter_ratio = np.sqrt(np.count_nonzero(labels == 1) / drawn)
    assert abs(diameter_ratio - 1) <= 0.04, diameter_ratio


def test_touching_discs_are_split_between_their_prompts():
    centres = [(60, 60), (89, 60)]  # radius 15: they touch (and overlap by a pixel)
    image = discs(centres, 15)
    desc = compute_descriptors(image)
    cells = np.array(centres, np.float64)
    shapes = outlines(desc.smoothed(0.8), cells, max_radius=40, radius_hint=15)
    groups = group_prompts(cells, shapes.radius)
    assert groups.tolist() == [0, 1]
    labels = rasterise(desc.grid_hw, cells, shapes, groups)
    for k, (x, y) in enumerate(centres):
        truth = np.zeros(desc.grid_hw, np.uint8)
        cv2.circle(truth, (x, y), 15, 1, -1)
        iou = np.logical_and(labels == k + 1, truth).sum() / np.logical_or(labels == k + 1, truth).sum()
        assert iou > 0.8, (k, iou)


def test_prompts_within_half_a_radius_are_one_object():
    groups = group_prompts(np.array([[10.0, 10.0], [13.0, 10.0], [40.0, 10.0]]), np.array([8.0, 8.0, 8.0]))
    assert groups.tolist() == [0, 0, 1]


def test_rim_candidates_are_the_disc_centres_and_an_edge_alone_is_none():
    centres = [(30, 30), (80, 30), (130, 30), (30, 90), (80, 90), (130, 90)]
    image = discs(centres, 10)
    desc = compute_descriptors(image)
    gx, gy = radial_gradients(desc.smoothed(0.8))
    rim = rim_map(gx, gy, 10)
    found, strength = RimField(gx, gy, 10).candidates(0.5 * rim.max())
    assert np.allclose(strength, rim[found[:, 1].astype(int), found[:, 0].astype(int)])
    assert len(found) == len(centres)
    for x, y in centres:
        assert np.hypot(found[:, 0] - x, found[:, 1] - y).min() <= 1.0
    # A straight edge is a rim on one side only: far weaker than a closed outline.
    half = np.full((120, 160, 3), 40, np.uint8)
    half[:, 80:] = 200
    hx, hy = radial_gradients(compute_descriptors(half).smoothed(0.8))
    assert rim_map(hx, hy, 10).max() < 0.2 * rim.max()


def test_detect_objects_finds_every_disc_of_the_exemplars_size_and_brightness_does_not_matter():
    centres = [(25 + 35 * i, 25 + 35 * j) for i in range(4) for j in range(3)]
    image = np.full((120, 160, 3), 40, np.uint8)
    for k, (x, y) in enumerate(centres):
        v = 90 + 12 * k  # dim to bright
        cv2.circle(image, (x, y), 10, (v, v, v), -1, lineType=cv2.LINE_AA)
    desc = compute_descriptors(image)
    found, radius = detect_objects(desc, np.array([[15.0, 15.0, 36.0, 36.0]]))
    assert abs(radius - 10.5) < 0.01
    assert len(found) == len(centres)
    for x, y in centres:
        assert np.hypot(found[:, 0] - x, found[:, 1] - y).min() <= 1.5


def test_climb_to_peak_reaches_a_peak_several_reaches_away_and_a_plateau_holds_a_point():
    ys, xs = np.mgrid[0:60, 0:80]
    cone = -np.hypot(xs - 50.0, ys - 30.0)  # one peak at (50, 30)
    start = np.array([[38.0, 30.0], [50.0, 42.0]])  # 12 cells off; a reach of 4 climbs 4 cells a time
    assert np.hypot(*(climb(cone, start, 4.0) - [50.0, 30.0]).T).min() >= 8.0  # one climb stops on the way
    assert climb_to_peak(cone, start, 4.0).tolist() == [[50.0, 30.0], [50.0, 30.0]]
    far = np.array([[2.0, 2.0]])  # farther than _PEAK_CLIMBS reaches: it stops on the way, higher up
    climbed = climb_to_peak(cone, far, 4.0)
    assert np.hypot(*(climbed - far)[0]) <= _PEAK_CLIMBS * 4.0 + 1e-9
    assert cone[int(climbed[0, 1]), int(climbed[0, 0])] > cone[2, 2]
    # On a plateau no neighbour is higher: the point stays (the first of equal maxima lies up and to the left).
    assert climb_to_peak(np.zeros((60, 80)), start, 4.0).tolist() == start.tolist()


def test_correlation_threshold_splits_two_populations_and_keeps_one_whole():
    rng = np.random.default_rng(0)
    two = np.concatenate([rng.normal(0.1, 0.03, 300), rng.normal(0.8, 0.03, 60)])
    t = correlation_threshold(two)
    assert 0.4 <= t <= 0.5  # the middle of the gap
    assert ((two >= t) == (np.arange(360) >= 300)).all()
    one = rng.normal(0.7, 0.1, 200)  # all candidates of the kind: no split through them
    assert correlation_threshold(one) == 0.3


@pytest.mark.parametrize(
    "exemplar, candidate, alike",
    [
        ((40, 160, 60), (20, 80, 30), True),  # a dim green object is still green
        ((40, 160, 60), (120, 255, 150), True),  # a bright, paler green too
        ((40, 160, 60), (170, 60, 40), False),  # red is another kind
        ((128, 128, 128), (60, 60, 60), True),  # grey stays grey whatever its brightness
        ((128, 128, 128), (40, 160, 60), False),  # a green thing is no grey product
    ],
)
def test_colour_compares_hue_for_coloured_exemplars_and_greyness_for_grey(exemplar, candidate, alike):
    image = np.full((60, 120, 3), 10, np.uint8)
    cv2.circle(image, (30, 30), 12, exemplar, -1)
    cv2.circle(image, (90, 30), 12, candidate, -1)
    desc = compute_descriptors(image)
    got = colour_matches(desc, np.array([[30.0, 30.0]]), np.array([[90.0, 30.0]]), 12.0)
    assert got.tolist() == [alike]


def test_the_exemplars_colour_is_the_hue_most_share_not_a_mix_of_them():
    from engines.embedded.dmg import reference_colour

    blue, amber, grey = (-0.15, -0.40), (0.17, 0.48), (0.0, 0.01)
    # Blue, blue, amber: blue (a component-wise median would give blue too, but see the next case).
    assert np.allclose(reference_colour(np.array([blue, blue, amber]).T), blue)
    # Grey (a box half over each colour), blue, amber: no grey majority; no hue shared: the first coloured.
    assert np.allclose(reference_colour(np.array([grey, blue, amber]).T), blue)
    # Mostly grey exemplars: a grey product.
    assert np.hypot(*reference_colour(np.array([grey, grey, amber]).T)) < 0.06


def test_target_guidance_records_the_support_colour_for_the_density_map_generator():
    from engines.embedded import build_outline_engines
    from engines.embedded.payload import SUPPORT_CHROMA
    from engines.interfaces import PromptGuidance

    image = np.full((120, 160, 3), 40, np.uint8)
    cv2.circle(image, (40, 60), 15, (40, 160, 60), -1)  # green: the support-like one
    cv2.circle(image, (110, 60), 15, (170, 60, 40), -1)  # red
    engines = build_outline_engines()
    embedding = engines.encoder.encode(image)
    h, w = embedding.features.shape[1:]
    similarity = np.zeros((h, w), np.float32)
    similarity[int(60 / 120 * h), int(40 / 160 * w)] = 1.0  # the green disc is the most support-like
    engines.decoder.decode_points(embedding, np.array([[40.0, 60.0]]), PromptGuidance(np.ones(3), similarity, 15))
    chroma = embedding.payload.peek(SUPPORT_CHROMA)
    assert chroma is not None and chroma[0] < -0.1 and chroma[1] > 0.05  # green: R - G < 0, R + G > 2B
