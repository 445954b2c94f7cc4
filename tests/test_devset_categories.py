"""The development set by category of product (streamer.devset.categories): its structure and exact truth.

No engine runs here (`python -m streamer.devset --set categories` prints the engines' table): these tests say
that the cases are what they claim to be, deterministic, and that the truth is exact where it is easy to get
wrong (holes, colours, tiny sizes, overlaps, numbering).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy import ndimage as ndi

pytest.importorskip("skimage")

from streamer.devset.categories import CATEGORIES, category_cases, category_scenes  # noqa: E402

SPLITS = ("development", "validation")


@pytest.fixture(scope="module", params=SPLITS)
def split(request):
    return request.param


@pytest.fixture(scope="module")
def cases(split):
    return category_cases(split)


def test_generation_is_deterministic():
    for category in ("holes", "colour"):
        cached = category_scenes("development", category)
        fresh = category_scenes.__wrapped__("development", category)
        assert cached.keys() == fresh.keys()
        for name in cached:
            assert np.array_equal(cached[name].image, fresh[name].image), (category, name)
            assert np.array_equal(cached[name].labels, fresh[name].labels), (category, name)


def test_the_splits_differ():
    dev, val = category_scenes("development", "holes"), category_scenes("validation", "holes")
    assert not np.array_equal(dev["support"].image, val["support"].image)


def test_every_category_has_its_scenes_and_a_foreign_case(cases):
    for category in CATEGORIES:
        mine = [c for c in cases if c.category == category]
        kinds = [c.kind for c in mine]
        assert kinds.count("same-image") >= 1 and kinds.count("cross-image") >= 1 and "foreign" in kinds, category
        for case in mine:
            assert case.support_mask.any() and case.support_mask.dtype == bool, case.name
            assert case.image.dtype == np.uint8 and case.image.shape[:2] == case.labels.shape, case.name
            if case.kind == "foreign":
                assert case.count == 0, case.name
            else:
                assert case.count >= 10, case.name
            if case.kind == "cross-image":
                # the support comes from another scene, under other light
                assert case.support_image is not case.image
                assert case.support_image.shape != case.image.shape or not np.array_equal(
                    case.support_image, case.image)
                assert abs(float(case.image.mean()) - float(case.support_image.mean())) > 3 or not np.allclose(
                    case.image.reshape(-1, 3).mean(0) / case.image.mean(),
                    case.support_image.reshape(-1, 3).mean(0) / case.support_image.mean(), atol=0.03), case.name


def test_labels_are_consecutive_and_the_support_is_one_object(cases):
    for case in cases:
        ids = np.unique(case.labels)
        assert np.array_equal(ids, np.arange(case.count + 1)), case.name
        assert case.labels.dtype == np.int32
        if case.kind == "same-image":
            # the support is exactly one labelled product of the query
            index = int(case.labels[case.support_mask][0])
            assert index > 0 and np.array_equal(case.support_mask, case.labels == index), case.name


def _holed_scenes(split):
    scenes = category_scenes(split, "holes")
    return [scenes[k] for k in scenes if k != "foreign"]


def test_holes_are_background(split):
    for laid in _holed_scenes(split):
        for index, box in enumerate(ndi.find_objects(laid.labels), start=1):
            mask = laid.labels[box] == index
            filled = ndi.binary_fill_holes(mask)
            hole = filled & ~mask
            assert hole.sum() > 0.1 * filled.sum(), index  # every washer or nut has its hole
            assert (laid.labels[box][hole] == 0).all()  # and the hole is background, not the product


def test_only_the_support_colour_is_labelled(split):
    laid = category_scenes(split, "colour")["support"]
    image = laid.image.astype(np.float32)
    medians = np.array([np.median(image[laid.labels == i], axis=0) for i in range(1, laid.count + 1)])
    reference = medians[0]
    assert np.abs(medians - reference).max() < 70, medians  # every labelled candy is the support's colour
    # the other colours' candies are in the scene, unlabelled: saturated pixels far from the support's colour
    saturated = (image.max(axis=2) - image.min(axis=2)) > 80
    other = saturated & (np.abs(image - reference).max(axis=2) > 100) & (laid.labels == 0)
    assert other.sum() > 20 * 600, other.sum()


def test_tiny_objects_are_6_to_14_px_and_dense(split):
    for key in ("support", "cross"):
        laid = category_scenes(split, "tiny")[key]
        assert 200 <= laid.count <= 500
        sides = np.array([(b[0].stop - b[0].start, b[1].stop - b[1].start) for b in ndi.find_objects(laid.labels)])
        assert sides.max() <= 14 and sides.max(axis=1).min() >= 6, (sides.min(), sides.max())


def test_overlaps_keep_at_least_80_percent_visible(split):
    for key in ("support", "cross"):
        laid = category_scenes(split, "touching")[key]
        visible = np.bincount(laid.labels.ravel(), minlength=laid.count + 1)[1:]
        fraction = visible / laid.own[1:]
        assert fraction.min() >= 0.8 - 1e-9, fraction.min()
        assert (fraction < 0.99).sum() >= 10  # and they do overlap: many objects are partly hidden


def test_products_elsewhere_do_not_overlap(split):
    for category in ("elongated", "holes", "printed", "shiny"):
        laid = category_scenes(split, category)["support"]
        visible = np.bincount(laid.labels.ravel(), minlength=laid.count + 1)[1:]
        assert np.array_equal(visible, laid.own[1:]), category


def test_elongated_products_are_2_5_to_6_to_1_in_every_orientation(split):
    laid = category_scenes(split, "elongated")["support"]
    angles, aspects = [], []
    for index in range(1, laid.count + 1):
        ys, xs = np.nonzero(laid.labels == index)
        (_, _), (w, h), angle = cv2.minAreaRect(np.stack([xs, ys], axis=1).astype(np.float32))
        aspects.append(max(w, h) / max(min(w, h), 1))
        angles.append(angle if w >= h else angle + 90)
    assert 2.0 <= min(aspects) and max(aspects) <= 6.5, (min(aspects), max(aspects))
    assert np.histogram(np.mod(angles, 180), bins=4, range=(0, 180))[0].min() >= 2  # every orientation
