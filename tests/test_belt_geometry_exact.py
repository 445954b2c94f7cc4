"""The belt's geometry exactly (streamer.tracking.belt_plane, streamer.tracking.arrival): frame pixels to the belt
plane and back with and without a lens model, the map's Jacobian and what it does to an item's figures, the frame
clock and a track's own motion. Each expected value comes from the geometry by hand (an affine map's effect on an
ellipse, a homography's area scale, OpenCV's distortion formula written out), not from the code under test.
Pure numpy on a few points: milliseconds, so tools/mutation.py runs them for every mutant.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from streamer.stream.tally_config import CalibrationConfig
from streamer.tracking.arrival import CLOCK_FRAMES, FrameClock, TrackMotion, exit_edge_pixels, frames_to_line
from streamer.tracking.belt_plane import BeltPlane, plane_figures
from streamer.tracking.measure import COLUMN, FIELDS

# A perspective map: (x, y) -> (0.5 x, 0.5 y) / w with w = 1 + 0.002 x + 0.003 y.
HOMOGRAPHY = np.array([[0.5, 0.0, 0.0], [0.0, 0.5, 0.0], [0.002, 0.003, 1.0]])
K = np.array([[400.0, 0.0, 160.0], [0.0, 380.0, 120.0], [0.0, 0.0, 1.0]])
DISTORTION = np.array([-0.2, 0.05, 0.001, -0.002, 0.0])


def _perspective(points):
    p = np.asarray(points, float).reshape(-1, 2)
    w = 1.0 + 0.002 * p[:, 0] + 0.003 * p[:, 1]
    return 0.5 * p / w[:, None]


def _perspective_jacobian(x, y):
    """d(plane)/d(pixel) of _perspective at (x, y), by the quotient rule."""
    w = 1.0 + 0.002 * x + 0.003 * y
    return np.array([[0.5 / w - 0.5 * x * 0.002 / w ** 2, -0.5 * x * 0.003 / w ** 2],
                     [-0.5 * y * 0.002 / w ** 2, 0.5 / w - 0.5 * y * 0.003 / w ** 2]])


def _distort(undistorted_px):
    """OpenCV's lens model (k1, k2, p1, p2, k3) written out: ideal pixels -> the pixels the lens shows."""
    k1, k2, p1, p2, k3 = DISTORTION
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    u = np.asarray(undistorted_px, float).reshape(-1, 2)
    x, y = (u[:, 0] - cx) / fx, (u[:, 1] - cy) / fy
    r2 = x * x + y * y
    radial = 1 + k1 * r2 + k2 * r2 ** 2 + k3 * r2 ** 3
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return np.stack([xd * fx + cx, yd * fy + cy], 1)


IDEAL = np.array([[160.0, 120.0], [20.0, 30.0], [300.0, 220.0], [100.0, 200.0]])


# -- calibrations -------------------------------------------------------------------------------------------
def test_a_plane_is_made_from_each_kind_of_calibration():
    bare = BeltPlane.from_config(CalibrationConfig())
    assert (bare.px_per_mm, bare.homography, bare.units, bare.calibrated) == (None, None, "px", False)
    scaled = BeltPlane.from_config(CalibrationConfig(reference_px=30, reference_mm=10))
    assert scaled.px_per_mm == 3.0 and scaled.homography is None and scaled.units == "mm"
    flat = BeltPlane.from_config(CalibrationConfig(homography=HOMOGRAPHY.tolist(), image_size=(320, 240)))
    assert flat.px_per_mm is None and flat.homography.tolist() == HOMOGRAPHY.tolist() and flat.units == "mm"
    assert flat.camera_matrix is None and flat.distortion is None
    lens = BeltPlane.from_config(CalibrationConfig(homography=HOMOGRAPHY.tolist(), image_size=(320, 240),
                                                   camera_matrix=K.tolist(), distortion=DISTORTION[:4].tolist()))
    assert lens.camera_matrix.tolist() == K.tolist() and lens.distortion.tolist() == DISTORTION[:4].tolist()
    # The lens model is really applied: a distorted corner maps where its ideal point does.
    corner = _distort([[20.0, 30.0]])
    assert lens.to_plane(corner) == pytest.approx(_perspective([[20.0, 30.0]]), abs=1e-4)


def test_matrices_are_float64_three_by_three_and_the_distortion_a_flat_vector():
    plane = BeltPlane(None, HOMOGRAPHY.astype(np.float32).reshape(9), K.astype(int).reshape(9),
                      [[-0.2], [0.05], [0.0], [0.0]])
    assert plane.homography.dtype == np.float64 and plane.homography.shape == (3, 3)
    assert plane.camera_matrix.dtype == np.float64 and plane.camera_matrix.tolist() == K.tolist()
    assert plane.distortion.dtype == np.float64 and plane.distortion.tolist() == [-0.2, 0.05, 0.0, 0.0]
    assert plane.homography[2].tolist() == pytest.approx([0.002, 0.003, 1.0])


# -- pixels <-> plane -----------------------------------------------------------------------------------------
def test_without_a_homography_the_plane_is_the_frame_scaled():
    points = np.array([[3.0, 4.0], [10.0, -2.0]])
    bare, scaled = BeltPlane(), BeltPlane(2.0)
    out = bare.to_plane(points)
    assert out.tolist() == points.tolist() and not np.shares_memory(out, points)
    assert scaled.to_plane(points).tolist() == [[1.5, 2.0], [5.0, -1.0]]
    assert scaled.to_plane([7.0, 9.0]).tolist() == [[3.5, 4.5]]  # one point, flat
    assert scaled.to_pixels([[1.5, 2.0]]).tolist() == [[3.0, 4.0]]
    back = bare.to_pixels(points)
    assert back.tolist() == points.tolist() and not np.shares_memory(back, points)
    assert bare.to_plane([[1, 2]]).dtype == np.float64


def test_a_homography_maps_both_ways_and_an_empty_list_stays_empty():
    plane = BeltPlane(None, HOMOGRAPHY)
    assert plane.to_plane(IDEAL) == pytest.approx(_perspective(IDEAL), rel=1e-12)
    assert plane.to_plane([20.0, 30.0]) == pytest.approx(_perspective([[20.0, 30.0]]), rel=1e-12)
    assert plane.to_pixels(_perspective(IDEAL)) == pytest.approx(IDEAL, rel=1e-9)
    assert plane.to_pixels(_perspective(IDEAL[:3])) == pytest.approx(IDEAL[:3], rel=1e-9)
    assert plane.to_pixels(_perspective(IDEAL)[1]) == pytest.approx(IDEAL[1:2], rel=1e-9)  # one point, flat
    assert plane.to_plane(np.zeros((0, 2))).shape == (0, 2)
    assert plane.to_plane(IDEAL).shape == (4, 2) and plane.to_pixels(_perspective(IDEAL)).shape == (4, 2)


def test_a_lens_is_undistorted_on_the_way_in_and_distorted_on_the_way_out():
    plane = BeltPlane(None, HOMOGRAPHY, K, DISTORTION)
    seen = _distort(IDEAL)
    assert plane.undistort(seen) == pytest.approx(IDEAL, abs=1e-3)
    assert plane.undistort(seen[1]) == pytest.approx(IDEAL[1:2], abs=1e-3)  # one point, flat
    assert plane.undistort(seen).shape == (4, 2)
    assert plane.to_plane(seen) == pytest.approx(_perspective(IDEAL), abs=1e-5)
    assert plane.to_pixels(_perspective(IDEAL)) == pytest.approx(seen, abs=1e-9)
    assert plane.to_pixels(_perspective(IDEAL[:3])) == pytest.approx(seen[:3], abs=1e-9)
    assert plane.undistort(np.zeros((0, 2))).shape == (0, 2)


def test_integer_pixels_map_like_float_ones():
    lens = BeltPlane(None, HOMOGRAPHY, K, DISTORTION)
    ints, floats = [[20, 30], [300, 220]], [[20.0, 30.0], [300.0, 220.0]]
    assert lens.undistort(ints).tolist() == lens.undistort(floats).tolist()
    assert lens.to_plane(ints).tolist() == lens.to_plane(floats).tolist()
    assert lens.to_pixels([[7, 11]]).tolist() == lens.to_pixels([[7.0, 11.0]]).tolist()
    assert lens.jacobians(ints).tolist() == lens.jacobians(floats).tolist()
    flat = BeltPlane(None, HOMOGRAPHY)
    assert flat.to_plane(ints).tolist() == flat.to_plane(floats).tolist()
    assert flat.to_pixels([[7, 11]]).tolist() == flat.to_pixels([[7.0, 11.0]]).tolist()


@pytest.mark.parametrize("matrix, distortion", [(None, DISTORTION), (K, None), (K, np.zeros(5))])
def test_without_a_whole_lens_model_points_pass_unchanged(matrix, distortion):
    plane = BeltPlane(None, HOMOGRAPHY, matrix, distortion)
    points = np.array([[12.345, 67.891], [300.5, 0.25]])
    assert plane.undistort(points).tolist() == points.tolist()
    assert plane.to_pixels(_perspective(points)) == pytest.approx(points, rel=1e-12)


# -- the Jacobian and the figures -----------------------------------------------------------------------------
def test_jacobians_are_the_maps_derivative_at_each_point():
    assert BeltPlane().jacobians([[1.0, 2.0], [3.0, 4.0]]).tolist() == [[[1.0, 0.0], [0.0, 1.0]]] * 2
    scaled = BeltPlane(4.0).jacobians([5.0, 6.0])
    assert scaled.tolist() == [[[0.25, 0.0], [0.0, 0.25]]]
    scaled[0, 0, 0] = 9.0  # each call's own array
    plane = BeltPlane(None, HOMOGRAPHY)
    got = plane.jacobians(IDEAL)
    assert got.shape == (4, 2, 2)
    for (x, y), jacobian in zip(IDEAL, got):
        assert jacobian == pytest.approx(_perspective_jacobian(x, y), rel=1e-5)
    # Pixels per mm there: the root of the inverse area scale, det(H) / w^3.
    w = 1.0 + 0.002 * IDEAL[:, 0] + 0.003 * IDEAL[:, 1]
    assert plane.local_px_per_mm(IDEAL) == pytest.approx(np.sqrt(w ** 3 / 0.25), rel=1e-5)


def _row(area=100.0, major=20.0, minor=10.0, orientation=0.0):
    row = np.full(len(FIELDS), np.nan)
    row[[COLUMN[n] for n in ("area", "diameter", "major_axis", "minor_axis", "orientation")]] = [
        area, 2 * math.sqrt(area / math.pi), major, minor, orientation]
    row[COLUMN["solidity"]], row[COLUMN["red"]] = 0.9, 200.0
    return row


def _figures(row, jacobian):
    return plane_figures(row[None], np.asarray(jacobian, float)[None])[0]


def test_an_affine_map_scales_areas_by_its_determinant_and_keeps_what_is_not_a_shape():
    table = np.stack([_row(), _row(area=50.0)])
    out = plane_figures(table, np.array([[[2.0, 0.0], [0.0, 3.0]], [[0.5, 0.0], [0.0, 0.5]]]))
    assert out[:, COLUMN["area"]].tolist() == [600.0, 12.5]
    assert out[:, COLUMN["diameter"]] == pytest.approx([2 * math.sqrt(600 / math.pi), 2 * math.sqrt(12.5 / math.pi)])
    assert out[:, COLUMN["solidity"]].tolist() == [0.9, 0.9] and out[:, COLUMN["red"]].tolist() == [200.0, 200.0]
    assert table[0, COLUMN["area"]] == 100.0  # the caller's table is left alone
    mirrored = _figures(_row(), [[-2.0, 0.0], [0.0, 1.0]])
    assert mirrored[COLUMN["area"]] == 200.0  # |det|: a mirror is no negative area
    assert plane_figures(np.zeros((0, len(FIELDS))), np.zeros((0, 2, 2))).shape == (0, len(FIELDS))


def test_an_axis_aligned_stretch_scales_each_axis_and_a_rotation_turns_the_ellipse():
    out = _figures(_row(major=20.0, minor=10.0, orientation=0.0), [[3.0, 0.0], [0.0, 0.5]])
    assert (out[COLUMN["major_axis"]], out[COLUMN["minor_axis"]]) == pytest.approx((60.0, 5.0))
    assert out[COLUMN["orientation"]] == pytest.approx(0.0, abs=1e-9)
    # The same stretch on an ellipse standing upright (orientation -90): y is squeezed, so x becomes the major.
    out = _figures(_row(major=20.0, minor=10.0, orientation=-90.0), [[3.0, 0.0], [0.0, 0.5]])
    assert (out[COLUMN["major_axis"]], out[COLUMN["minor_axis"]]) == pytest.approx((30.0, 10.0))
    assert out[COLUMN["orientation"]] == pytest.approx(0.0, abs=1e-9)
    angle = math.radians(30.0)
    rotation = 2.0 * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    out = _figures(_row(major=20.0, minor=10.0, orientation=10.0), rotation)
    assert (out[COLUMN["major_axis"]], out[COLUMN["minor_axis"]], out[COLUMN["orientation"]]) == pytest.approx(
        (40.0, 20.0, 40.0))
    out = _figures(_row(major=20.0, minor=10.0, orientation=-80.0), -rotation)  # a turn past 90 wraps to -90..90
    assert out[COLUMN["orientation"]] == pytest.approx(-50.0)


def test_small_and_round_shapes_keep_their_axes():
    # A circle of diameter 8 halved: diameter 4, no preferred axis (no spread between the eigenvalues).
    out = _figures(_row(major=8.0, minor=8.0), 0.5 * np.eye(2))
    assert (out[COLUMN["major_axis"]], out[COLUMN["minor_axis"]]) == pytest.approx((4.0, 4.0))
    out = _figures(_row(major=2.0, minor=1.0), np.eye(2))  # under a pixel's spread: kept as it is
    assert (out[COLUMN["major_axis"]], out[COLUMN["minor_axis"]]) == pytest.approx((2.0, 1.0))


def test_an_ellipse_turned_upright_exactly_is_oriented_minus_90():
    out = _figures(_row(major=20.0, minor=10.0, orientation=0.0), [[0.0, 1.0], [1.0, 0.0]])  # x and y swapped
    assert (out[COLUMN["major_axis"]], out[COLUMN["minor_axis"]]) == pytest.approx((20.0, 10.0))
    assert out[COLUMN["orientation"]] == -90.0


def test_an_upright_ellipse_keeps_orientation_minus_90_and_a_shear_tilts_a_circle():
    out = _figures(_row(major=20.0, minor=10.0, orientation=-90.0), np.eye(2))
    assert (out[COLUMN["major_axis"]], out[COLUMN["minor_axis"]], out[COLUMN["orientation"]]) == pytest.approx(
        (20.0, 10.0, -90.0))
    # A circle of diameter 8 (second moments 4 I) under the shear [[1, 1], [0, 1]]: 4 J J^T = 4 [[2, 1], [1, 1]],
    # eigenvalues 4 (3 +- sqrt 5) / 2, the major axis at atan2(2, 1) / 2 from x.
    out = _figures(_row(major=8.0, minor=8.0, orientation=0.0), [[1.0, 1.0], [0.0, 1.0]])
    big, small = 4 * (3 + math.sqrt(5)) / 2, 4 * (3 - math.sqrt(5)) / 2
    assert out[COLUMN["major_axis"]] == pytest.approx(4 * math.sqrt(big))
    assert out[COLUMN["minor_axis"]] == pytest.approx(4 * math.sqrt(small))
    assert out[COLUMN["orientation"]] == pytest.approx(math.degrees(math.atan2(2.0, 1.0)) / 2)
    # The shear [[1, 0], [-1, 1]]: 4 [[1, -1], [-1, 2]], the major axis along y = -1.618 x (below the x axis).
    out = _figures(_row(major=8.0, minor=8.0, orientation=0.0), [[1.0, 0.0], [-1.0, 1.0]])
    assert out[COLUMN["orientation"]] == pytest.approx(math.degrees(math.atan(-(1 + math.sqrt(5)) / 2)))


def test_figures_go_to_the_plane_through_the_map_at_each_items_centre():
    table = np.stack([_row(), _row()])
    centres = np.array([[20.0, 30.0], [300.0, 220.0]])
    assert BeltPlane().figures(table, centres) is table  # pixels: unchanged
    scaled = BeltPlane(2.0).figures(table, centres)
    assert scaled[:, COLUMN["area"]].tolist() == [25.0, 25.0] and scaled[:, COLUMN["major_axis"]].tolist() == [
        10.0, 10.0]
    out = BeltPlane(None, HOMOGRAPHY).figures(table, centres)
    for k, (x, y) in enumerate(centres):
        assert out[k, COLUMN["area"]] == pytest.approx(100.0 * abs(np.linalg.det(_perspective_jacobian(x, y))),
                                                       rel=1e-5)
    # A centre that is not a number (a mask without pixels) is measured at the origin, not as NaN everywhere.
    nan = BeltPlane(None, HOMOGRAPHY).figures(table[:1], np.array([[np.nan, np.nan]]))
    assert nan[0, COLUMN["area"]] == pytest.approx(100.0 * 0.25, rel=1e-5)


# -- when an item reaches a line ------------------------------------------------------------------------------
def test_frames_to_a_line_ahead_behind_and_along_it():
    p0, p1 = (10.0, 0.0), (10.0, 20.0)
    points = [[4.0, 5.0], [16.0, 7.0], [0.0, 0.0], [4.0, 50.0]]
    velocities = [[2.0, 0.0], [2.0, 1.0], [0.0, 3.0], [-3.0, 0.0]]
    got = frames_to_line(points, velocities, p0, p1)
    assert got[:2].tolist() == [3.0, -3.0] and math.isnan(got[2]) and got[3] == -2.0  # the line is infinite
    # A slanted line through the origin and (3, 4): from (10, 0) moving left it is reached at x = 0.
    assert frames_to_line([10.0, 0.0], [-1.0, 0.0], (0, 0), (3, 4)).tolist() == pytest.approx([10.0])
    # From (0, 10) moving right it meets y = 4 x / 3 at x = 7.5.
    assert frames_to_line([0.0, 10.0], [1.0, 0.0], (0, 0), (3, 4)).tolist() == pytest.approx([7.5])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # along the line (x / 0, and 0 / 0 on it): NaN without a warning
        along_it = frames_to_line([[0.0, 5.0], [10.0, 5.0]], [[0.0, 1.0], [0.0, 1.0]], p0, p1)
    assert np.isnan(along_it).all()
    assert frames_to_line([[10, 0]], [[-1, 0]], [0, 0], [3, 4]).dtype == np.float64


def test_along_the_line_means_within_a_billionth_of_a_unit_per_frame_across_it():
    p0, p1 = (10.0, 0.0), (10.0, 20.0)  # 20 long: the speed across it is measured per unit of the plane
    assert frames_to_line([[0.0, 0.0]], [[2e-9, 1.0]], p0, p1).tolist() == pytest.approx([5e9])
    assert math.isnan(frames_to_line([[0.0, 0.0]], [[1e-9, 1.0]], p0, p1)[0])
    assert math.isnan(frames_to_line([[0.0, 0.0]], [[-0.5e-9, 1.0]], p0, p1)[0])
    assert frames_to_line([[0.0, 0.0]], [[-2e-9, 1.0]], p0, p1).tolist() == pytest.approx([-5e9])


def test_each_exit_edge_in_pixels():
    assert exit_edge_pixels("right", 320, 240).tolist() == [[320.0, 0.0], [320.0, 240.0]]
    assert exit_edge_pixels("left", 320, 240).tolist() == [[0.0, 0.0], [0.0, 240.0]]
    assert exit_edge_pixels("top", 320, 240).tolist() == [[0.0, 0.0], [320.0, 0.0]]
    assert exit_edge_pixels("bottom", 320, 240).tolist() == [[0.0, 240.0], [320.0, 240.0]]
    assert exit_edge_pixels("right", 320, 240).dtype == np.float64


def test_the_frame_clock_measures_its_period_over_the_recent_frames_only():
    clock = FrameClock()
    assert clock.period is None and clock.gap() == 1 and clock.time_of(5) is None
    clock.add(10, 100.0)
    assert clock.period is None and clock.gap() == 1 and clock.time_of(10) is None
    clock.add(13, 100.875)  # captured a little late
    clock.add(16, 101.5)
    assert clock.period == 0.25 and clock.gap() == 3
    # Between frames: interpolated between the two around it (not along the period's line).
    assert clock.time_of(14.5) == pytest.approx(100.875 + 0.5 * 0.625)
    assert clock.time_of(11.0) == pytest.approx(100.0 + 0.875 / 3)
    assert clock.time_of(10) == 100.0 and clock.time_of(16) == 101.5 and clock.time_of(13) == 100.875
    assert clock.time_of(20.0) == 102.5 and clock.time_of(8.0) == 99.5  # beyond them: at the period
    clock.add(17, 101.875)
    assert clock.time_of(19.0) == pytest.approx(101.875 + 2 * 1.875 / 7)  # from the last frame at the period
    slow_then_fast = FrameClock()
    for index in range(100):
        slow_then_fast.add(index, float(index))
    for index in range(100, 400):
        slow_then_fast.add(index, 100.0 + 0.5 * (index - 100))
    assert slow_then_fast.period == 0.5  # the last CLOCK_FRAMES frames, all at the new rate
    assert slow_then_fast.time_of(400 - CLOCK_FRAMES - 10) == pytest.approx(
        100.0 + 0.5 * (400 - CLOCK_FRAMES - 110))  # forgotten frames: extrapolated from the first kept


def test_a_restarted_frame_counter_starts_the_clock_afresh():
    clock = FrameClock()
    clock.add(50, 10.0)
    clock.add(60, 11.0)
    clock.add(60, 20.0)  # the same index again: a restart
    assert clock.period is None and clock.gap() == 1
    clock.add(62, 21.0)
    assert clock.period == 0.5 and clock.gap() == 2
    clock.add(3, 30.0)  # earlier than the last: a restart too
    assert clock.period is None


def test_a_tracks_motion_is_fitted_once_its_views_span_enough_frames():
    motion = TrackMotion(index=0, centre=np.zeros(2))
    assert motion.fitted(0) is None
    for index in (100, 106, 112):  # x = 2 + 0.5 i, y = 10 - 0.25 i, i counted from the first whole view
        i = index - 100
        motion.add_whole(index, np.array([2.0 + 0.5 * i, 10.0 - 0.25 * i]))
    assert motion.origin == 100
    assert motion.sums.tolist() == [3.0, 18.0, 180.0, 15.0, 25.5, 126.0, 135.0]
    position, velocity = motion.fitted(120)
    assert velocity.tolist() == [0.5, -0.25] and position.tolist() == [12.0, 5.0]
    assert motion.fitted(100)[0].tolist() == [2.0, 10.0]


def test_a_fit_needs_three_views_spread_over_a_variance_of_nine_frames():
    def motion(frames):
        m = TrackMotion(index=0, centre=np.zeros(2))
        for index in frames:
            m.add_whole(index, np.array([float(index), 0.0]))
        return m

    assert motion([0, 30]).fitted(30) is None  # two views, however far apart
    assert motion([5, 5, 5, 5]).fitted(5) is None  # no spread at all
    assert motion([0, 0, 6, 6]).fitted(6)[1].tolist() == [1.0, 0.0]  # variance exactly 9: enough
    assert motion([0, 1, 5, 6]).fitted(6) is None  # variance 6.5: not yet
    assert motion([7, 7, 13, 13]).origin == 7


def test_a_kept_frame_gets_its_own_capture_time_exactly():
    """At the first kept frame the time is that frame's, not the end-to-end line's extrapolation from the last
    (equal only up to rounding: 0.08000000000000002; a second reader's case for FrameClock.time_of)."""
    clock = FrameClock()
    for index, stamp in ((0, 0.08), (3, 0.1133), (4, 0.2133), (7, 0.3133)):
        clock.add(index, stamp)
    assert clock.time_of(0) == 0.08 and clock.time_of(7) == 0.3133 and clock.time_of(3) == 0.1133
