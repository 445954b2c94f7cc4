"""IDM (PerSense Algorithm 3, Eq. 2-4) on density maps whose answer is known."""

import cv2
import numpy as np
import pytest

from streamer.persense import idm
from streamer.persense.idm import density_to_gray


def disc_map(shape, centres, radius, value=1.0):
    density = np.zeros(shape, np.float32)
    for x, y in centres:
        cv2.circle(density, (int(x), int(y)), radius, value, thickness=-1)
    return density


def match(points, truth, tol):
    """Every true centre has exactly one point within tol, and no point is left over."""
    points = np.asarray(points)
    truth = np.asarray(truth, np.float64)
    assert len(points) == len(truth), (points, truth)
    dist = np.linalg.norm(points[:, None, :] - truth[None, :, :], axis=2)
    assert (dist.min(axis=0) <= tol).all(), dist.min(axis=0)
    assert len(set(dist.argmin(axis=1))) == len(truth)


def test_isolated_blobs_give_one_point_each_at_their_centre():
    centres = [(20 + 40 * i, 30 + 50 * j) for i in range(6) for j in range(3)]
    points = idm(disc_map((200, 260), centres, 9))
    match(points, centres, tol=1.0)
    assert points.dtype == np.float32 and points.shape == (18, 2)


def test_gaussian_blobs_of_varied_height():
    yy, xx = np.mgrid[0:120, 0:160]
    centres = [(30, 30), (80, 40), (130, 30), (50, 90), (110, 90)]
    density = sum(h * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 5.0**2)) for (x, y), h in zip(centres, [1, 0.7, 0.9, 0.8, 1]))
    match(idm(density), centres, tol=1.0)


def test_touching_pair_forms_a_composite_contour_that_is_split():
    singles = [(25 + 45 * i, 25) for i in range(8)] + [(25 + 45 * i, 150) for i in range(8)]
    pair = [(150, 85), (150 + 18, 85)]  # two radius-10 discs 1.8 r apart: one contour, twice the area
    density = disc_map((190, 400), singles + pair, 10)
    # Algorithm 3, line 23: centres of step 7 (every contour, the composite too) and step 21 (its children).
    match(idm(density), singles + pair + [(159, 85)], tol=2.0)
    # Without the composite's own centre: one point per object.
    match(idm(density, keep_composite_centroid=False), singles + pair, tol=2.0)


def test_each_composite_is_split_by_its_own_distance_transform_maximum():
    # Fifty singles keep sigma small enough that both pairs are outliers (Eq. 3); the larger pair's distance
    # maximum is larger, and each pair is split at half of its own maximum.
    singles = [(25 + 45 * i, y) for i in range(10) for y in (25, 70, 250, 295, 340)]
    small_pair = [(100, 160), (100 + 18, 160)]  # radius 10, 1.8 r apart
    large_pair = [(300, 160), (325, 160)]  # radius 13, 1.9 r apart
    density = np.maximum(disc_map((370, 470), singles + small_pair, 10), disc_map((370, 470), large_pair, 13))
    match(idm(density, keep_composite_centroid=False), singles + small_pair + large_pair, tol=2.5)


def test_composite_needs_area_beyond_mu_plus_two_sigma():
    # Only two contours: a pair and a single. sigma is large relative to the pair's excess, so (Eq. 3)
    # the pair is NOT an outlier and keeps one centroid, as the algorithm prescribes.
    density = disc_map((100, 200), [(40, 50), (58, 50), (150, 50)], 10)
    assert len(idm(density)) == 2


def test_empty_and_constant_maps_give_no_points():
    assert idm(np.zeros((50, 60), np.float32)).shape == (0, 2)
    assert idm(np.full((50, 60), 3.0, np.float32)).shape == (0, 2)


def test_single_object_is_one_point():
    points = idm(disc_map((80, 80), [(33, 47)], 12))
    match(points, [(33, 47)], tol=1.0)


def test_threshold_is_inclusive_at_T_on_the_0_255_scale():
    density = np.zeros((60, 120), np.float32)
    density[5:15, 5:15] = 1.0  # the peak, gray 255
    density[30:45, 30:45] = 30 / 255  # gray exactly T = 30: kept (Eq. 2 is >=)
    density[30:45, 80:95] = 29 / 255  # gray 29: dropped
    points = idm(density, threshold=30)
    assert len(points) == 2
    assert not any(x > 70 and y > 25 for x, y in points)
    assert density_to_gray(density)[35, 35] == 30


def test_erosion_removes_specks_thinner_than_three_pixels():
    density = disc_map((60, 60), [(20, 20)], 8)
    density[50, 10:50] = 1.0  # a one-pixel line of noise
    density[45:47, 5:9] = 1.0  # a 2x4 speck
    assert len(idm(density)) == 1


@pytest.mark.parametrize("scale", [1e-6, 1.0, 1e6])
def test_scale_of_the_density_does_not_matter(scale):
    centres = [(15, 15), (45, 15), (15, 45), (45, 45)]
    match(idm(disc_map((60, 60), centres, 6) * scale), centres, tol=1.0)
