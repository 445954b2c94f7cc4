"""IDM where the answer is exact: centroids known analytically to a hundredth of a pixel, Eq. 3's population
statistics decided by a count of contours, and a composite's children placed by mirror symmetry."""

import numpy as np
import pytest

from streamer.persense.idm import density_to_gray, idm, split_composite

import cv2


def squares(shape, boxes):
    """Density 1.0 over each (x0, y0, x1, y1) pixel box (inclusive): the centroid is ((x0+x1)/2, (y0+y1)/2)."""
    density = np.zeros(shape, np.float32)
    for x0, y0, x1, y1 in boxes:
        density[y0 : y1 + 1, x0 : x1 + 1] = 1.0
    return density


def sorted_points(points):
    return sorted(map(tuple, np.asarray(points, np.float64).round(4).tolist()))


def test_rectangle_centroids_are_exact_to_a_hundredth_of_a_pixel():
    # Even and odd widths: centres on a pixel and between two pixels. Erosion shrinks each side by one pixel,
    # except a side on the frame's edge (OpenCV's erosion treats outside the frame as object).
    h, w = 40, 60
    boxes = [(3, 4, 11, 12), (20, 5, 27, 13), (40, 2, 46, 15), (0, 30, 9, 39), (52, 28, 59, 39)]
    points = idm(squares((h, w), boxes))
    eroded = [(x0 + (x0 > 0), y0 + (y0 > 0), x1 - (x1 < w - 1), y1 - (y1 < h - 1)) for x0, y0, x1, y1 in boxes]
    truth = [((x0 + x1) / 2, (y0 + y1) / 2) for x0, y0, x1, y1 in eroded]
    assert len(points) == len(truth)
    for got, want in zip(sorted_points(points), sorted(truth)):
        assert abs(got[0] - want[0]) < 0.01 and abs(got[1] - want[1]) < 0.01, (got, want)


def test_disc_centroids_are_within_a_tenth_of_a_pixel():
    yy, xx = np.mgrid[0:100, 0:140]
    centres = [(20.0, 20.0), (60.5, 25.0), (100.0, 30.5), (30.5, 70.5), (90.25, 70.0)]
    density = np.zeros((100, 140), np.float32)
    for cx, cy in centres:
        density[(xx - cx) ** 2 + (yy - cy) ** 2 <= 9.5**2] = 1.0
    for got, want in zip(sorted_points(idm(density)), sorted(centres)):
        assert abs(got[0] - want[0]) <= 0.1 and abs(got[1] - want[1]) <= 0.1, (got, want)


def _population_case(singles: int):
    """`singles` 7 x 7 squares (eroded contour area 16) and one 7 x 15 bar (area 48) in one map."""
    boxes = [(2 + 12 * i, 2, 8 + 12 * i, 8) for i in range(singles)] + [(2, 20, 16, 26)]
    return squares((30, 12 * singles + 20), boxes)


def test_eq3_uses_the_population_standard_deviation():
    # With n equal singles and one larger contour, B > mu + k sigma reduces to sqrt(n) > k for the population
    # sigma but n > k sqrt(n + 1) for the sample sigma. n = 4, k = 1.9: population says composite (2 > 1.9),
    # sample says not (4 < 4.25). A composite contributes its child's centre as well as its own.
    assert len(idm(_population_case(4), composite_sigmas=1.9)) == 4 + 2
    assert len(idm(_population_case(4), composite_sigmas=1.9, keep_composite_centroid=False)) == 4 + 1
    # k = 2.1 > sqrt(4): no composite, one point per contour.
    assert len(idm(_population_case(4), composite_sigmas=2.1)) == 4 + 1
    # The mean, too: with 9 singles sqrt(9) = 3 > 2.9 makes the bar a composite.
    assert len(idm(_population_case(9), composite_sigmas=2.9)) == 9 + 2
    assert len(idm(_population_case(9), composite_sigmas=3.1)) == 9 + 1


def test_composite_bar_child_and_parent_share_the_exact_centre():
    points = idm(_population_case(4), composite_sigmas=1.9)
    bar = [p for p in points.tolist() if p[1] > 15]
    assert len(bar) == 2
    for x, y in bar:
        assert abs(x - 9.0) < 0.01 and abs(y - 23.0) < 0.01


def _dumbbell(shape=(60, 120), left=(10, 20, 40, 40), right=(70, 20, 100, 40), bridge_rows=(29, 31)):
    density = squares(shape, [left, right])
    density[bridge_rows[0] : bridge_rows[1] + 1, left[2] : right[0] + 1] = 1.0
    return density


def test_split_composite_children_are_mirror_images_at_the_squares_centres():
    # Two 31 x 21 blocks joined by a thin bridge, mirror-symmetric about x = 55 and about y = 30.
    binary = (_dumbbell() > 0).astype(np.uint8)
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    (contour,) = contours
    children = sorted(split_composite(contour))
    assert len(children) == 2
    (lx, ly), (rx, ry) = children
    assert abs((lx + rx) / 2 - 55.0) < 0.01  # the mirror: an off-by-one in a child's x shows here
    assert abs(ly - 30.0) < 0.01 and abs(ry - 30.0) < 0.01  # and in its y here
    assert abs(lx - 25.0) < 1.0 and abs(rx - 85.0) < 1.0


def test_split_of_a_block_touching_the_frame_edge_is_exact():
    # The contour touches its bounding box on every side: the padding must make the border count as boundary.
    binary = np.zeros((21, 31), np.uint8)
    binary[:, :] = 1
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    (child,) = split_composite(contours[0])
    assert abs(child[0] - 15.0) < 0.01 and abs(child[1] - 10.0) < 0.01


def test_small_regions_split_into_themselves():
    # One pixel: its distance maximum is 1 (> 0), so it is its own child; a 3 x 3 square's child is its centre.
    assert split_composite(np.array([[[5, 5]]], np.int32)) == [(5.0, 5.0)]
    assert split_composite(np.array([[[5, 5]], [[5, 7]], [[7, 7]], [[7, 5]]], np.int32)) == [(6.0, 6.0)]


def test_density_to_gray_is_exact_min_max_with_rounding():
    density = np.array([[1.0, 2.0, 3.0], [1.5, 1.002, 2.998]], np.float32)
    gray = density_to_gray(density)
    assert gray.dtype == np.uint8
    # (v - 1) * 255 / 2, rounded to nearest: 0, 127.5 -> 128, 255, 63.75 -> 64, 0.255 -> 0, 254.745 -> 255.
    assert gray.tolist() == [[0, 128, 255], [64, 0, 255]]
    assert density_to_gray(np.array([[-2.0, 0.0]], np.float32)).tolist() == [[0, 255]]
    assert density_to_gray(np.zeros((0, 3), np.float32)).shape == (0, 3)
    assert density_to_gray(np.array([[np.nan, 1.0]])).tolist() == [[0, 0]]
    assert density_to_gray(np.array([[np.inf, 1.0]])).tolist() == [[0, 0]]
    # A span far below float32 resolution of the values is still a span.
    assert density_to_gray(np.array([[0.0, 1e-9]], np.float64)).tolist() == [[0, 255]]


@pytest.mark.parametrize("threshold", [30, 200])
def test_threshold_parameter_reaches_eq2(threshold):
    density = squares((20, 40), [(2, 2, 10, 10), (20, 2, 30, 10)])
    density[2:11, 20:31] = (threshold - 0.4) / 255  # gray rounds to threshold: kept (>=)
    assert len(idm(density, threshold=threshold)) == 2
    density[2:11, 20:31] = (threshold - 0.6) / 255  # gray rounds to threshold - 1: dropped
    assert len(idm(density, threshold=threshold)) == 1


def test_defaults_are_the_papers_and_empty_answers_are_float32_pairs():
    density = squares((20, 40), [(2, 2, 10, 10)])
    density[2:11, 20:31] = 30 / 255  # gray exactly 30: kept at the default T = 30
    assert len(idm(density)) == 2
    for empty in (np.zeros((10, 10)), np.full((10, 10), 2.0)):
        out = idm(empty)
        assert out.shape == (0, 2) and out.dtype == np.float32
    assert density_to_gray(np.full((3, 3), 5.0)).dtype == np.uint8
    assert density_to_gray(np.zeros((0, 3))).dtype == np.uint8
