"""The any-shape engines and the routing of the default embedded engines (engines/anyshape/)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from engines.anyshape import AnyShapeSupport
from engines.anyshape.instances import find_regions
from engines.anyshape.routed import RoutedEncoder, is_round
from engines.anyshape.shape import ShapeTolerance, ellipse_fit, shape_agreement, shape_distance, shape_stats
from engines.embedded import build_embedded_engines
from streamer.devset.categories import category_cases
from streamer.metrics_eval import evaluate
from streamer.persense import PerSense


def _disk(r=20, size=64):
    mask = np.zeros((size, size), np.uint8)
    cv2.circle(mask, (size // 2, size // 2), r, 1, -1)
    return mask.astype(bool)


def _rod(length=80, width=16, angle=30.0, size=128):
    mask = np.zeros((size, size), np.uint8)
    box = cv2.boxPoints(((size / 2, size / 2), (length, width), angle)).astype(np.int32)
    cv2.fillPoly(mask, [box], 1)
    return mask.astype(bool)


def _bracket(size=96):
    mask = np.zeros((size, size), bool)
    mask[20:80, 20:36] = True
    mask[64:80, 20:76] = True
    return mask


def _washer(size=96):
    mask = _disk(30, size)
    return mask & ~_disk(12, size)


def test_shape_measures_what_they_name():
    disk, rod, bracket, washer = shape_stats(_disk()), shape_stats(_rod()), shape_stats(_bracket()), shape_stats(_washer())
    assert disk.elongation == pytest.approx(1.0, abs=0.05)
    assert rod.elongation == pytest.approx(5.0, rel=0.15)
    assert bracket.solidity < 0.7 < disk.solidity
    assert washer.hole_fraction == pytest.approx((12 / 30) ** 2, abs=0.05) and disk.hole_fraction == 0
    assert disk.inner_radius == pytest.approx(20, abs=1.5)
    assert disk.circle_fill > 0.85 > shape_stats(np.pad(np.ones((40, 40), bool), 10)).circle_fill


def test_ellipse_fit_tells_disks_from_squares_and_brackets():
    square = np.pad(np.ones((40, 40), bool), 12)
    assert ellipse_fit(_disk()) > 0.95
    assert 0.8 < ellipse_fit(square) < 0.9
    assert ellipse_fit(_bracket()) < 0.7


def test_shape_agreement_accepts_the_same_shape_turned_and_refuses_others():
    tolerance = ShapeTolerance()
    rod = shape_stats(_rod(angle=30))
    assert shape_agreement(shape_stats(_rod(angle=110)), rod, tolerance) > 0.5
    assert shape_agreement(shape_stats(_disk(r=20, size=128)), rod, tolerance) == 0.0
    washer = shape_stats(_washer())
    assert shape_agreement(shape_stats(_disk(30, 96)), washer, tolerance) == 0.0  # a disc is not a washer


def test_round_and_blob_supports_go_to_the_outline_engines_others_to_the_any_shape_engines():
    assert is_round(_disk()) and is_round(_disk(r=6, size=24))
    assert not is_round(_rod()) and not is_round(_bracket()) and not is_round(_washer())
    image = np.full((128, 128, 3), 60, np.uint8)
    image[_rod()] = (200, 150, 60)
    assert isinstance(RoutedEncoder().learn_support(image, _rod()), AnyShapeSupport)
    disk = np.pad(_disk(), 32)
    image[disk] = (200, 150, 60)
    assert RoutedEncoder().learn_support(image, disk) is None


@pytest.fixture(scope="module")
def category_results():
    results = {}
    for case in category_cases("development", ("angular", "holes", "colour")):
        persense = PerSense(build_embedded_engines())
        persense.set_support(case.support_image, case.support_mask)
        result = persense.segment(case.image)
        results[case.name] = (case, result, evaluate(result, case.labels))
    return results


def test_non_round_categories_hold_their_measured_quality(category_results):
    """Measured with the default engines (README, "Products of any shape"): angular, holes and colour scenes at
    F1 0.82-1.0; their foreign cases (plates, discs, other colours) at most 7 counted."""
    for name, (case, result, quality) in category_results.items():
        if case.kind == "foreign":
            assert result.count <= 8, (name, result.count)
        else:
            assert quality.f1 >= 0.8, (name, quality.f1)


def test_holes_stay_holes(category_results):
    case, result, _ = category_results["washers on a belt"]
    hole_pixels = 0
    for inst in result.instances:
        x0, y0, x1, y1 = inst.bbox
        truth = case.labels[y0:y1, x0:x1] > 0
        # The washer's hole is background in the truth; a mask that follows the outline leaves it out too.
        hole_pixels += int((inst.mask & ~truth).sum())
        filled = cv2.morphologyEx(inst.mask.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
        assert (inst.mask.sum() < 0.95 * _filled_area(filled)), "a washer's mask has its hole"
    assert hole_pixels < 0.2 * sum(int(i.mask.sum()) for i in result.instances)


def _filled_area(mask: np.ndarray) -> int:
    from scipy import ndimage

    return int(ndimage.binary_fill_holes(mask).sum())


def _square_stats(side=12):
    return shape_stats(np.pad(np.ones((side, side), bool), 2))


def _probability_with(blocks, hw=(120, 160)):
    """float32[h, w] background 0.02 with each (y, x, h, w, p) block at probability p."""
    probability = np.full(hw, 0.02, np.float32)
    for y, x, h, w, p in blocks:
        probability[y:y + h, x:x + w] = p
    return probability


def test_a_region_the_classifier_half_believes_is_not_counted_beside_sure_ones():
    """A region of another material that the classifier scores 0.45 (a textured belt's mortar) beside items
    scored 0.9: above the foreground level, the support's shape, yet not the product (instances._MATERIAL_SHARE)."""
    squares = [(10 + 30 * (i // 4), 10 + 35 * (i % 4), 12, 12, 0.9) for i in range(6)]
    half = (95, 120, 12, 12, 0.45)
    found = find_regions(_probability_with(squares + [half]), _square_stats())
    assert len(found.scores) == 6
    assert found.labels[100, 125] == 0
    alone = find_regions(_probability_with([half]), _square_stats())  # with no sure items to compare with
    assert len(alone.scores) == 1


def test_pieces_of_a_clump_are_not_counted_where_the_frames_items_have_another_shape():
    """Two squares joined by a narrow neck make a clump that is split in two; where the frame's separate items are
    rods, its pieces are not evidence of squares (a heap of rods cut into "tablets"); where they are squares, they
    are (instances._ANOTHER_SHAPE)."""
    pair = [(90, 40, 12, 12, 0.9), (90, 60, 12, 12, 0.9), (94, 52, 4, 8, 0.9)]
    rods = [(10 + 25 * (i // 3), 10 + 50 * (i % 3), 5, 40, 0.9) for i in range(6)]
    squares = [(10 + 25 * (i // 3), 10 + 50 * (i % 3), 12, 12, 0.9) for i in range(6)]
    support = _square_stats()
    with_squares = find_regions(_probability_with(squares + pair), support)
    assert len(with_squares.scores) == 8 and with_squares.whole.sum() == 6
    with_rods = find_regions(_probability_with(rods + pair), support)
    assert len(with_rods.scores) == 0


def test_fill_holes_fills_what_scipy_fills():
    """engines.anyshape.shape.fill_holes (one flood fill) against scipy.ndimage.binary_fill_holes, whose rule it
    keeps: background cells not 4-connected to the border are holes."""
    from scipy import ndimage

    from engines.anyshape.shape import fill_holes

    rng = np.random.default_rng(7)
    masks = [rng.random((int(rng.integers(1, 40)), int(rng.integers(1, 40)))) > share
             for share in np.linspace(0.1, 0.9, 200)]
    masks += [np.zeros((3, 3), bool), np.ones((3, 3), bool), _washer()]
    for mask in masks:
        assert np.array_equal(fill_holes(mask), ndimage.binary_fill_holes(mask))
    assert fill_holes(_washer()).sum() > _washer().sum()


def _star(outer, size=None):
    """bool mask of a five-pointed star of outer radius `outer` cells (inner radius 0.45 of it)."""
    size = size or int(2 * outer + 6)
    angles = np.arange(10) * np.pi / 5 - np.pi / 2
    radii = np.where(np.arange(10) % 2 == 0, outer, 0.45 * outer)
    points = np.stack([size / 2 + radii * np.cos(angles), size / 2 + radii * np.sin(angles)], 1)
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [np.round(points * 16).astype(np.int32)], 1, shift=4)
    return mask.astype(bool)


def test_a_smaller_item_of_the_product_is_judged_at_its_own_size():
    """A star at 0.45 of the support star's area covers fewer grid cells, and its points round off: as plain shape
    measures it is nearly a pentagon (distance over 1); judged with the tolerance for its size it is the product,
    and a disc of that size still is not (clumps.at_size)."""
    from engines.anyshape.clumps import at_size as _at_size

    def seen(mask):  # as the classifier's smoothed probability outlines it on its grid
        return cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 1.5) > 0.5

    tolerance = ShapeTolerance()
    support = shape_stats(seen(_star(12)))
    small = shape_stats(seen(_star(8)))
    disc = shape_stats(seen(_disk(r=6, size=22)))
    ratio = small.area / support.area
    assert 0.35 < ratio < 0.55
    assert shape_distance(small, support, tolerance) >= 1.0
    assert shape_distance(small, support, _at_size(tolerance, ratio)) < 1.0
    assert shape_distance(disc, support, _at_size(tolerance, disc.area / support.area)) > 1.0
    assert _at_size(tolerance, 1.5) == tolerance


def test_the_frames_belt_is_learnt_only_where_the_support_image_never_showed_it():
    """engines.anyshape.adapt.belt_samples: an unfamiliar belt (a tenth of the frame half-believed, away from the
    items) gives belt cells, all away from the items and less product-like than them; a familiar belt, or a frame
    with fewer than three separate items, gives none."""
    from engines.anyshape.adapt import belt_samples

    squares = [(10 + 30 * (i // 4), 10 + 35 * (i % 4), 12, 12, 0.9) for i in range(6)]
    support = _square_stats()
    familiar = _probability_with(squares)
    bank = np.stack([np.arange(familiar.size, dtype=np.float32).reshape(familiar.shape)] * 2)  # cell index
    regions = find_regions(familiar, support)
    assert belt_samples(bank, familiar, regions, support.inner_radius) is None
    unfamiliar = familiar.copy()
    unfamiliar[90:, :] = np.where(np.indices((30, 160)).sum(0) % 7 < 3, 0.5, 0.1)  # a half-believed texture
    regions = find_regions(unfamiliar, support)
    assert int(regions.whole.sum()) == 6 and len(regions.scores) > 6  # pieces of the texture taken for items
    cells = belt_samples(bank, unfamiliar, regions, support.inner_radius)
    assert cells is not None and cells.shape[1] == 2 and len(cells) > 1000
    index = cells[:, 0].astype(int)
    items = np.isin(regions.labels, 1 + np.flatnonzero(regions.whole))
    near_items = cv2.dilate(items.astype(np.uint8), np.ones((5, 5), np.uint8)).ravel() > 0
    assert not near_items[index].any()
    assert (unfamiliar.ravel()[index] < 0.8 * 0.9).all()
    assert (unfamiliar.ravel()[index] == 0.5).any()  # the half-believed texture is shown as belt
    few = find_regions(np.where(np.arange(160) < 40, unfamiliar, 0.1).astype(np.float32), support)
    assert int(few.whole.sum()) < 3
    assert belt_samples(bank, unfamiliar, few, support.inner_radius) is None


def test_chrome_caps_on_an_unfamiliar_belt_are_found_once_the_belt_is_learnt(monkeypatch):
    """The category set's chrome caps: support on a green belt, frame on gravel the classifier half-believes.
    Measured with the default engines: F1 0.71 (26 counted, masks spilling onto the gravel, gravel pieces
    counted) without learning the frame's belt, 1.00 with it (engines.anyshape.adapt)."""
    import engines.anyshape.engines as anyshape_engines

    case = next(c for c in category_cases("development", ("shiny",)) if c.kind == "cross-image")

    def f1() -> float:
        persense = PerSense(build_embedded_engines())
        persense.set_support(case.support_image, case.support_mask)
        return evaluate(persense.segment(case.image), case.labels).f1

    learnt = f1()
    monkeypatch.setattr(anyshape_engines, "belt_samples", lambda *args, **kwargs: None)
    assert learnt >= 0.9 and f1() < 0.8  # measured 0.966 and 0.714
