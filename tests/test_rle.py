"""RLE from box-cropped masks equals pycocotools' encoding of the full-frame mask."""

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from streamer.rle import decode, encode_crop


def reference(full):
    rle = mask_utils.encode(np.asfortranarray(full.astype(np.uint8)))
    return rle["counts"].decode("ascii")


@pytest.mark.parametrize("seed", range(20))
def test_random_crops_match_pycocotools(seed):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(5, 60, size=2)
    x0, x1 = sorted(rng.integers(0, w + 1, size=2))
    y0, y1 = sorted(rng.integers(0, h + 1, size=2))
    if seed % 4 == 0:  # touching the frame's bottom and top: runs continue across columns
        y0, y1 = 0, h
    crop = rng.random((y1 - y0, x1 - x0)) < rng.uniform(0.1, 0.9)
    full = np.zeros((h, w), bool)
    full[y0:y1, x0:x1] = crop
    rle = encode_crop(crop, (x0, y0, x1, y1), (int(h), int(w)))
    assert rle["size"] == [h, w]
    assert rle["counts"] == reference(full)
    assert np.array_equal(decode(rle), full)


def test_empty_and_full_masks():
    assert encode_crop(np.zeros((0, 0), bool), (0, 0, 0, 0), (4, 5))["counts"] == reference(np.zeros((4, 5), bool))
    full = np.ones((4, 5), bool)
    assert encode_crop(full, (0, 0, 5, 4), (4, 5))["counts"] == reference(full)


def test_many_crops_at_once_equal_pycocotools_one_by_one():
    from streamer.rle import encode_crops

    rng = np.random.default_rng(7)
    h, w = 37, 23
    items, fulls = [], []
    for k in range(40):
        x0, x1 = sorted(rng.integers(0, w + 1, size=2))
        y0, y1 = (0, h) if k % 5 == 0 else sorted(rng.integers(0, h + 1, size=2))
        crop = rng.random((y1 - y0, x1 - x0)) < 0.5
        if k % 7 == 0:
            crop[:] = True
        full = np.zeros((h, w), bool)
        full[y0:y1, x0:x1] = crop
        items.append((crop, (x0, y0, x1, y1)))
        fulls.append(full)
    assert [r["counts"] for r in encode_crops(items, (h, w))] == [reference(f) for f in fulls]


def test_areas_and_centroids_from_the_runs_equal_the_instances_own():
    from streamer.rle import crop_runs, run_stats
    from streamer.types import Instance

    rng = np.random.default_rng(3)
    h, w = 41, 29
    instances = []
    for k in range(30):
        x0, x1 = sorted(rng.integers(0, w + 1, size=2))
        y0, y1 = (0, h) if k % 4 == 0 else sorted(rng.integers(0, h + 1, size=2))
        instances.append(Instance(k, 0.5, (x0, y0, x1, y1), rng.random((y1 - y0, x1 - x0)) < 0.4))
    areas, centroids = run_stats(crop_runs([(i.mask, i.bbox) for i in instances], (h, w)))
    for inst, area, centroid in zip(instances, areas, centroids):
        assert area == inst.area
        if area:
            assert np.allclose(centroid, inst.centroid)
