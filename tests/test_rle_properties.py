"""Property tests of the RLE encoder against pycocotools, on adversarial multi-object layouts: objects that
meet across a column boundary (one object's last pixel at a column's bottom, the next object's first at the
following column's top), one-pixel objects, empty crops, and objects on the frame's edges."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from pycocotools import mask as mask_utils

from streamer.rle import crop_runs, decode, encode_crops, run_counts, run_stats


def reference(full):
    return mask_utils.encode(np.asfortranarray(full.astype(np.uint8)))["counts"].decode("ascii")


@st.composite
def frames(draw):
    """(frame_hw, [(mask crop, bbox)]) with objects of every awkward kind."""
    h = draw(st.integers(1, 12))
    w = draw(st.integers(1, 12))
    items = []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["random", "pixel", "column_seam", "full_height", "empty", "edge"]))
        if kind == "pixel":
            x, y = draw(st.integers(0, w - 1)), draw(st.integers(0, h - 1))
            items.append((np.ones((1, 1), bool), (x, y, x + 1, y + 1)))
        elif kind == "column_seam" and w >= 2:
            # A ends at the bottom of column c; B starts at the top of column c + 1: adjacent runs, two owners.
            c = draw(st.integers(0, w - 2))
            items.append((np.ones((1, 1), bool), (c, h - 1, c + 1, h)))
            items.append((np.ones((1, 1), bool), (c + 1, 0, c + 2, 1)))
        elif kind == "full_height":
            # One object whose runs continue from column to column: they must join into one run.
            x0 = draw(st.integers(0, w - 1))
            x1 = draw(st.integers(x0 + 1, w))
            bits = draw(st.lists(st.booleans(), min_size=h * (x1 - x0), max_size=h * (x1 - x0)))
            mask = np.array(bits, bool).reshape(h, x1 - x0)
            mask[-1, 0] = True
            if x1 - x0 > 1:
                mask[0, 1] = True
            items.append((mask, (x0, 0, x1, h)))
        elif kind == "empty":
            x, y = draw(st.integers(0, w)), draw(st.integers(0, h))
            items.append((np.zeros((0, 0), bool), (x, y, x, y)))
        else:
            x0 = draw(st.integers(0, w - 1))
            x1 = draw(st.integers(x0 + 1, w))
            y0 = draw(st.integers(0, h - 1))
            y1 = draw(st.integers(y0 + 1, h))
            if kind == "edge":
                x0, x1 = (0, x1) if draw(st.booleans()) else (x0, w)
                y0, y1 = (0, y1) if draw(st.booleans()) else (y0, h)
            bits = draw(st.lists(st.booleans(), min_size=(y1 - y0) * (x1 - x0), max_size=(y1 - y0) * (x1 - x0)))
            items.append((np.array(bits, bool).reshape(y1 - y0, x1 - x0), (x0, y0, x1, y1)))
    return (h, w), items


def _full(mask, bbox, hw):
    full = np.zeros(hw, bool)
    x0, y0, x1, y1 = bbox
    full[y0:y1, x0:x1] = mask
    return full


@settings(max_examples=300, deadline=None)
@given(frames())
def test_encode_crops_equals_pycocotools_object_by_object(frame):
    hw, items = frame
    fulls = [_full(m, b, hw) for m, b in items]
    encoded = encode_crops(items, hw)
    assert [r["counts"] for r in encoded] == [reference(f) for f in fulls]
    assert all(r["size"] == list(hw) for r in encoded)
    for r, full in zip(encoded, fulls):
        assert np.array_equal(decode(r), full)


@settings(max_examples=300, deadline=None)
@given(frames())
def test_uncompressed_counts_sum_to_the_frame_and_alternate(frame):
    hw, items = frame
    counts = run_counts(crop_runs(items, hw))
    assert len(counts) == len(items)
    for c, (mask, bbox) in zip(counts, items):
        full = _full(mask, bbox, hw)
        assert sum(c) == hw[0] * hw[1]
        assert all(n > 0 for n in c[1:])  # only the leading background run may be empty
        assert sum(c[1::2]) == full.sum()
        # pycocotools' own uncompressed RLE of the same mask, decoded, is the same mask.
        rle = mask_utils.frPyObjects({"size": list(hw), "counts": c}, *hw)
        assert np.array_equal(mask_utils.decode(rle).astype(bool), full)


@settings(max_examples=200, deadline=None)
@given(frames())
def test_areas_and_centroids_equal_numpys(frame):
    hw, items = frame
    areas, centroids = run_stats(crop_runs(items, hw))
    assert areas.dtype == np.int64 and centroids.shape == (len(items), 2)
    for (mask, bbox), area, centroid in zip(items, areas, centroids):
        full = _full(mask, bbox, hw)
        assert area == full.sum()
        if area:
            ys, xs = np.nonzero(full)
            assert np.allclose(centroid, [xs.mean(), ys.mean()], atol=1e-9)
        else:
            assert np.isnan(centroid).all()


def test_two_objects_meeting_across_a_column_boundary_stay_two_objects():
    # The named bug: a join of runs that ignores which object a run belongs to merges A's last run with B's first.
    hw = (4, 3)
    a = (np.ones((1, 1), bool), (0, 3, 1, 4))  # column 0, bottom pixel: frame offset 3
    b = (np.ones((1, 1), bool), (1, 0, 2, 1))  # column 1, top pixel: frame offset 4
    assert run_counts(crop_runs([a, b], hw)) == [[3, 1, 8], [4, 1, 7]]
    # One object over the same two pixels is one run.
    both = (np.array([[False, True], [False, False], [False, False], [True, False]]), (0, 0, 2, 4))
    assert run_counts(crop_runs([both], hw)) == [[3, 2, 7]]


def test_an_object_that_ends_the_frame_has_no_trailing_background_run():
    hw = (3, 2)
    assert run_counts(crop_runs([(np.ones((1, 1), bool), (1, 2, 2, 3))], hw)) == [[5, 1]]
    assert run_counts(crop_runs([(np.ones((3, 2), bool), (0, 0, 2, 3))], hw)) == [[0, 6]]
    assert run_counts(crop_runs([(np.zeros((0, 0), bool), (0, 0, 0, 0))], hw)) == [[6]]
    assert run_counts(crop_runs([], hw)) == [] and encode_crops([], hw) == []


def test_runs_record_their_owner_and_count():
    runs = crop_runs([(np.ones((2, 1), bool), (0, 0, 1, 2)), (np.ones((1, 2), bool), (1, 2, 3, 3))], (3, 3))
    assert runs.starts.tolist() == [0, 5, 8] and runs.ends.tolist() == [2, 6, 9]
    assert runs.owner.tolist() == [0, 1, 1] and runs.count == 2 and runs.frame_hw == (3, 3)
    empty = crop_runs([], (3, 3))
    assert empty.starts.shape == empty.ends.shape == empty.owner.shape == (0,) and empty.count == 0
    assert empty.frame_hw == (3, 3) and empty.starts.dtype == np.int64


def test_decode_accepts_bytes_and_str():
    rle = encode_crops([(np.ones((1, 1), bool), (1, 1, 2, 2))], (3, 3))[0]
    as_bytes = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    assert decode(rle).dtype == bool and np.array_equal(decode(rle), decode(as_bytes))
    assert decode(rle).sum() == 1 and decode(rle)[1, 1]
