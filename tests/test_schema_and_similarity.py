"""The result schema `persense.result/1` field by field, and the support prototype / similarity (Eq. 1) on
feature grids whose answer is known."""

import json

import numpy as np
import pytest

from engines.interfaces import ImageEmbedding
from streamer.errors import UserError
from streamer.persense.similarity import similarity_grid, support_prototype, to_frame
from streamer.rle import decode
from streamer.schema import SCHEMA, result_to_dict
from streamer.types import Instance, SegmentationResult


def _result():
    a = np.zeros((3, 4), bool)
    a[1:, 1:3] = True  # 4 pixels at x 3..4, y 3..4 in the frame
    b = np.ones((1, 1), bool)
    empty = np.zeros((0, 0), bool)
    instances = [
        Instance(0, 0.123456789, (2, 2, 6, 5), a),
        Instance(1, 0.5, (9, 7, 10, 8), b),  # the frame's bottom-right pixel
        Instance(2, 0.25, (4, 1, 8, 3), empty),  # an empty mask: centroid is the box centre
    ]
    return SegmentationResult(
        width=10, height=8, instances=instances, density_count=2.71828, match_quality=0.987654,
        timings_ms={"encode": 1.23456, "decode": 2.0},
    )


def test_result_document_fields_are_exact():
    doc = result_to_dict(_result(), camera="line1", seq=7)
    assert doc["schema"] == SCHEMA == "persense.result/1"
    assert (doc["width"], doc["height"], doc["count"]) == (10, 8, 3)
    assert doc["density_count"] == 2.718 and doc["match_quality"] == 0.9877
    assert doc["timings_ms"] == {"encode": 1.235, "decode": 2.0}
    assert doc["camera"] == "line1" and doc["seq"] == 7
    first, second, third = doc["instances"]
    assert first == {**first, "id": 0, "score": 0.12346, "bbox": [2, 2, 6, 5], "area": 4, "centroid": [3.5, 3.5]}
    assert second["area"] == 1 and second["centroid"] == [9.0, 7.0] and second["bbox"] == [9, 7, 10, 8]
    assert third["area"] == 0 and third["centroid"] == [6.0, 2.0]
    assert [i["id"] for i in doc["instances"]] == [0, 1, 2]
    # The masks decode to the instances' pixels in the full frame.
    for inst, item in zip(_result().instances, doc["instances"]):
        full = np.zeros((8, 10), bool)
        inst.paste(full)
        assert item["mask"]["size"] == [8, 10] and np.array_equal(decode(item["mask"]), full)
    # Plain Python types only: the document is JSON as it stands.
    assert json.loads(json.dumps(doc)) == doc
    assert all(type(v) is int for i in doc["instances"] for v in i["bbox"] + [i["area"], i["id"]])


def test_result_document_without_masks_and_without_instances():
    doc = result_to_dict(_result(), include_masks=False)
    assert all("mask" not in i for i in doc["instances"])
    assert doc["instances"][0]["area"] == 4  # areas and centroids do not need the masks
    empty = result_to_dict(SegmentationResult(width=4, height=3, instances=[]))
    assert empty["instances"] == [] and empty["count"] == 0
    assert empty["density_count"] == 0.0 and empty["match_quality"] == 0.0 and empty["timings_ms"] == {}


def _embedding(features, valid_hw=None):
    c, h, w = features.shape
    return ImageEmbedding(features=features.astype(np.float32), frame_hw=(h * 4, w * 4), valid_hw=valid_hw or (h, w))


def test_support_prototype_is_the_normalised_mean_inside_the_mask():
    feats = np.zeros((2, 4, 4), np.float32)
    feats[0, :2, :2] = 3.0  # the object's cells: (3, 4) -> (0.6, 0.8)
    feats[1, :2, :2] = 4.0
    feats[0, 2:, :] = 1.0  # elsewhere: (1, 0)
    mask = np.zeros((16, 16), bool)
    mask[:8, :8] = True  # exactly the top-left 2 x 2 cells
    assert np.allclose(support_prototype(_embedding(feats), mask), [0.6, 0.8], atol=1e-6)
    # Cells covered by less than half are left out; exactly half counts.
    mask[:8, 8:10] = True  # half of cell column 2
    feats[:, :2, 2] = [[0.0, 0.0], [1.0, 1.0]]
    assert np.allclose(support_prototype(_embedding(feats), mask), np.array([2.0, 3.0]) / np.hypot(2.0, 3.0), atol=1e-6)
    mask[:8, 9] = False  # a quarter: left out again
    assert np.allclose(support_prototype(_embedding(feats), mask), [0.6, 0.8], atol=1e-6)


def test_support_prototype_of_a_speck_uses_the_cells_it_touches_most():
    feats = np.zeros((2, 4, 4), np.float32)
    feats[:, 1, 1] = [0.0, 2.0]
    feats[:, 1, 2] = [2.0, 0.0]
    mask = np.zeros((16, 16), bool)
    mask[5:6, 5:7] = True  # 2 of cell (1, 1)'s 16 pixels; nothing reaches half of a cell
    assert np.allclose(support_prototype(_embedding(feats), mask), [0.0, 1.0], atol=1e-6)
    mask[5:6, 8:10] = True  # now as much of cell (1, 2): both cells, with equal weight
    assert np.allclose(support_prototype(_embedding(feats), mask), [np.sqrt(0.5)] * 2, atol=1e-6)


def test_support_prototype_only_reads_the_valid_grid_and_refuses_empty_masks():
    feats = np.zeros((2, 4, 4), np.float32)
    feats[1, :2, :2] = 1.0
    feats[0, 2:, 2:] = 100.0  # padding the encoder added: outside valid_hw
    mask = np.ones((8, 8), bool)
    assert np.allclose(support_prototype(_embedding(feats, valid_hw=(2, 2)), mask), [0.0, 1.0], atol=1e-6)
    with pytest.raises(UserError, match="covers no part"):
        support_prototype(_embedding(feats), np.zeros((16, 16), bool))
    with pytest.raises(UserError, match="all zero"):
        support_prototype(_embedding(np.zeros((2, 4, 4))), np.ones((16, 16), bool))


def test_similarity_grid_is_the_cosine_on_the_valid_cells():
    feats = np.zeros((2, 3, 4), np.float32)
    feats[:, 0, 0] = [3.0, 4.0]  # same direction as the prototype: 1
    feats[:, 0, 1] = [-4.0, 3.0]  # orthogonal: 0
    feats[:, 1, 0] = [-6.0, -8.0]  # opposite: -1
    feats[:, 1, 1] = [1.0, 0.0]  # 0.6
    sim = similarity_grid(_embedding(feats, valid_hw=(2, 3)), np.array([0.6, 0.8], np.float32))
    assert sim.shape == (2, 3) and sim.dtype == np.float32
    assert np.allclose(sim, [[1.0, 0.0, 0.0], [-1.0, 0.6, 0.0]], atol=1e-6)  # zero vectors give 0, not NaN


def test_to_frame_is_a_bilinear_resize_and_a_no_op_at_frame_size():
    grid = np.array([[0.0, 1.0], [2.0, 3.0]], np.float32)
    assert to_frame(grid, (2, 2)) is grid
    up = to_frame(grid, (4, 6))
    assert up.shape == (4, 6)
    # Half-pixel centres: the first frame column samples x = -0.25 (clamped to 0), the last x = 1.25 (to 1).
    assert up[0, 0] == 0.0 and up[-1, -1] == 3.0
    # Column 2 samples x = (2 + 0.5) / 3 - 0.5 = 1/3; row 3 samples y = (3 + 0.5) / 2 - 0.5 = 1.25 -> 1.
    assert np.isclose(up[0, 2], 1 / 3, atol=1e-3) and np.isclose(up[3, 2], 2 + 1 / 3, atol=1e-3)


def test_similarity_grid_reads_channels_first_and_keeps_small_norms():
    feats = np.zeros((2, 5, 3), np.float32)  # C = 2, h = 5, w = 3: no axis may stand in for another
    feats[:, 0, 0] = [0.03, 0.04]  # a short vector in the prototype's direction: cosine 1, not 0.05
    feats[:, 4, 2] = [0.0, -0.5]
    sim = similarity_grid(_embedding(feats), np.array([0.6, 0.8], np.float32))
    assert sim.shape == (5, 3)
    assert np.isclose(sim[0, 0], 1.0, atol=1e-5) and np.isclose(sim[4, 2], -0.8, atol=1e-5)


def test_support_prototype_of_a_partial_cover_uses_cells_covered_at_least_half():
    feats = np.zeros((2, 4, 4), np.float32)
    feats[:, 1, 1] = [0.0, 1.0]
    feats[:, 1, 2] = [1.0, 0.0]
    mask = np.zeros((16, 16), bool)
    mask[4:7, 4:8] = True  # 12 of cell (1, 1)'s 16 pixels: 0.75, counted
    mask[4:5, 8:12] = mask[5:6, 8:11] = True  # 7 of cell (1, 2)'s: 0.44, left out
    proto = support_prototype(_embedding(feats), mask)
    assert proto.dtype == np.float32 and np.allclose(proto, [0.0, 1.0], atol=1e-6)


def test_support_prototype_errors_are_the_documented_lines():
    with pytest.raises(UserError, match=r"^the support mask covers no part of the support image's feature grid$"):
        support_prototype(_embedding(np.ones((2, 4, 4))), np.zeros((16, 16), bool))
    with pytest.raises(UserError, match=r"^the support object's features are all zero; choose another support image$"):
        support_prototype(_embedding(np.zeros((2, 4, 4))), np.ones((16, 16), bool))


def test_centroids_are_rounded_to_two_decimals():
    mask = np.zeros((3, 3), bool)
    mask[0, 0] = mask[0, 1] = mask[1, 0] = True  # centroid (1/3, 1/3)
    doc = result_to_dict(SegmentationResult(width=3, height=3, instances=[Instance(0, 1.0, (0, 0, 3, 3), mask)]))
    assert doc["instances"][0]["centroid"] == [0.33, 0.33]
