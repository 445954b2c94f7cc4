"""Post-processing: best mask per prompt, NMS on the low-res grid, box-only upsampling equal to a full resize."""

import cv2
import numpy as np
import pytest

from engines.interfaces import DecoderOutput
from streamer.persense.postprocess import instances_from_decoder, lowres_masks, upsample_in_box


def disc_logits(grid, centre, radius):
    yy, xx = np.mgrid[0 : grid[0], 0 : grid[1]]
    return (radius - np.hypot(xx - centre[0], yy - centre[1])).astype(np.float32)


@pytest.mark.parametrize("frame_hw,valid_hw", [((480, 640), (192.0, 256.0)), ((721, 1283), (143.875, 256.0)), ((100, 90), (100, 90))])
def test_box_upsampling_equals_full_resize_inside_and_nothing_outside(frame_hw, valid_hw):
    grid = (256, 256) if valid_hw[1] == 256.0 else (100, 90)
    logits = disc_logits(grid, (60.3, 70.6), 9.5)
    output = DecoderOutput(logits=logits[None, None], scores=np.ones((1, 1), np.float32), valid_hw=valid_hw)
    (low,) = lowres_masks(output)
    box, mask = upsample_in_box(low, valid_hw, frame_hw)

    # Reference: the valid region resized as a whole (exact when valid_hw is integral).
    if float(valid_hw[0]).is_integer():
        full = cv2.resize(logits[: int(valid_hw[0]), : int(valid_hw[1])], frame_hw[::-1], interpolation=cv2.INTER_LINEAR) > 0
        x0, y0, x1, y1 = box
        assert np.array_equal(full[y0:y1, x0:x1], mask)
        outside = full.copy()
        outside[y0:y1, x0:x1] = False
        assert not outside.any()
    assert mask.sum() > 0


def output_for(masks_lowres, scores, valid_hw):
    logits = np.stack([np.where(m, 1.0, -1.0).astype(np.float32) for m in masks_lowres])[:, None]
    return DecoderOutput(logits=logits, scores=np.asarray(scores, np.float32)[:, None], valid_hw=valid_hw)


def test_duplicates_are_removed_keeping_the_higher_score():
    grid = (64, 64)
    a = disc_logits(grid, (20, 20), 6) > 0
    a_shifted = disc_logits(grid, (21, 20), 6) > 0
    b = disc_logits(grid, (45, 40), 6) > 0
    out = output_for([a, a_shifted, b], [0.7, 0.9, 0.8], (64, 64))
    points = np.array([[20, 20], [21, 20], [45, 40]], np.float32)
    inst = instances_from_decoder(out, points, (64, 64), duplicate_iou=0.5)
    assert [i.point for i in inst] == [(21.0, 20.0), (45.0, 40.0)]
    assert [i.id for i in inst] == [0, 1]


def test_best_of_k_candidates_is_chosen_and_small_or_weak_masks_dropped():
    grid = (32, 32)
    small = disc_logits(grid, (10, 10), 2)
    large = disc_logits(grid, (10, 10), 6)
    logits = np.stack([np.stack([small, large])])
    out = DecoderOutput(logits=logits, scores=np.array([[0.2, 0.6]], np.float32), valid_hw=(32, 32))
    inst = instances_from_decoder(out, np.array([[10, 10]], np.float32), (64, 64))
    assert len(inst) == 1 and inst[0].score == pytest.approx(0.6)
    assert inst[0].area > 300  # the large disc, scaled x2: about pi * 12^2 = 452
    assert instances_from_decoder(out, np.array([[10, 10]], np.float32), (64, 64), min_score=0.7) == []
    assert instances_from_decoder(out, np.array([[10, 10]], np.float32), (64, 64), min_area=10_000) == []


def test_masks_are_tight_and_inside_the_frame():
    grid = (16, 16)
    edge = disc_logits(grid, (15, 15), 5) > 0  # in the bottom-right corner
    out = output_for([edge], [0.9], (16, 16))
    (inst,) = instances_from_decoder(out, np.array([[15, 15]], np.float32), (50, 40))
    x0, y0, x1, y1 = inst.bbox
    assert x1 == 40 and y1 == 50 and inst.mask.shape == (y1 - y0, x1 - x0)
    assert inst.mask[0].any() and inst.mask[:, 0].any() and inst.mask[-1].any() and inst.mask[:, -1].any()


def test_label_maps_give_the_same_instances_as_equivalent_logits():
    labels = np.zeros((40, 60), np.int32)
    for i, (x, y) in enumerate([(10, 10), (30, 12), (45, 30)]):
        labels[disc_logits((40, 60), (x, y), 6) > 0] = i + 1
    labels[disc_logits((40, 60), (14, 14), 3) > 0] = 1  # object 1 is not a disc: shape must survive
    scores = np.array([[0.9], [0.8], [0.7]], np.float32)
    points = np.array([[10, 10], [30, 12], [45, 30]], np.float32)
    from_labels = instances_from_decoder(DecoderOutput(None, labels=labels, scores=scores, valid_hw=(40, 60)), points, (80, 120))
    logits = np.stack([np.where(labels == i + 1, 1.0, -1.0) for i in range(3)])[:, None].astype(np.float32)
    from_logits = instances_from_decoder(DecoderOutput(logits=logits, scores=scores, valid_hw=(40, 60)), points, (80, 120))
    assert len(from_labels) == 3
    for a, b in zip(from_labels, from_logits):
        assert a.bbox == b.bbox and np.array_equal(a.mask, b.mask) and a.score == b.score


def test_decoder_output_needs_exactly_one_of_logits_and_labels():
    with pytest.raises(ValueError):
        DecoderOutput(None, scores=np.ones((1, 1)), valid_hw=(4, 4))


def test_duplicate_candidates_equal_the_brute_force_bound():
    from streamer.persense.postprocess import duplicate_candidates

    rng = np.random.default_rng(1)
    for trial in range(20):
        n = int(rng.integers(0, 60))
        x0 = rng.integers(0, 100, n)
        y0 = rng.integers(0, 100, n)
        boxes = np.stack([x0, y0, x0 + rng.integers(1, 30, n), y0 + rng.integers(1, 30, n)], axis=1)
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) // int(rng.integers(1, 3))
        expected = []
        for i in range(n):
            for j in range(i + 1, n):
                ix = max(0, min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0]))
                iy = max(0, min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1]))
                if ix * iy / max(areas[i], areas[j], 1) > 0.5:
                    expected.append((i, j))
        first, second = duplicate_candidates(boxes, areas, 0.5)
        assert list(zip(first.tolist(), second.tolist())) == expected
