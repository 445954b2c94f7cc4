"""A click's mask follows the item's own outline (engines.anyshape.follow): rods, brackets and rings whole, and
the single item, not the pile, where items of one colour touch."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from engines.anyshape import build_routed_engines
from engines.anyshape.follow import follow_outline, label_map_at
from streamer.devset.categories import category_cases
from streamer.metrics_eval import evaluate
from streamer.persense import PerSense
from streamer.persense.pick import pick_object

ORANGE, GREY = (225, 140, 50), (90, 95, 100)


def _belt(h=240, w=320, seed=0):
    rng = np.random.default_rng(seed)
    return np.clip(np.array(GREY, np.float32) + rng.normal(0, 4, (h, w, 3)), 0, 255)


def _paint(image, mask, colour, seed=1):
    rng = np.random.default_rng(seed)
    image[mask] = np.clip(np.array(colour, np.float32) + rng.normal(0, 4, (int(mask.sum()), 3)), 0, 255)


def _disk(hw, centre, radius):
    yy, xx = np.indices(hw)
    return (xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 <= radius ** 2


def _iou(a, b):
    return (a & b).sum() / (a | b).sum()


@pytest.mark.parametrize("shape", ["rod", "bracket", "ring"])
def test_a_blob_in_an_item_grows_to_the_whole_item(shape):
    image = _belt()
    item = np.zeros(image.shape[:2], bool)
    if shape == "rod":
        item[110:130, 100:220] = True  # 6:1
        click = (160, 120)
    elif shape == "bracket":
        item[80:200, 60:84] = True
        item[176:200, 60:180] = True
        click = (72, 188)
    else:
        item = _disk(item.shape, (160, 120), 60) & ~_disk(item.shape, (160, 120), 36)
        click = (160, 72)
    _paint(image, item, ORANGE)
    blob = _disk(item.shape, click, 10) & item
    found = follow_outline(image.astype(np.uint8), blob, click)
    assert _iou(blob, item) < 0.3 and _iou(found, item) > 0.95
    if shape == "ring":
        assert not found[120, 160]  # the hole stays a hole


def _pile_scene():
    """Eight orange disks lying apart and a pile of four touching ones, on a grey belt; the pile's first disk."""
    image = _belt(300, 400)
    hw = image.shape[:2]
    apart = [(40 + 45 * i, 40) for i in range(8)]
    pile = [(150, 200), (188, 200), (226, 200), (188, 238)]
    every = np.zeros(hw, bool)
    for centre in apart + pile:
        every |= _disk(hw, centre, 19)
    _paint(image, every, ORANGE)  # one colour: where disks touch nothing parts them
    return image.astype(np.uint8), _disk(hw, pile[0], 19), pile[0]


def test_in_a_pile_of_touching_items_the_click_keeps_its_own_item(monkeypatch):
    """GrabCut's colours take the whole pile; the single item's shape recurs among the frame's items lying apart,
    the pile's does not: the item is kept. Without asking the frame, the pile would be the answer."""
    import engines.anyshape.follow as follow

    image, disk, click = _pile_scene()
    blob = disk & _disk(disk.shape, click, 16)
    found = follow_outline(image, blob, click)
    assert _iou(found, disk) > 0.65 and found.sum() <= disk.sum()  # the click's blob, inside its own disk
    monkeypatch.setattr(follow, "recurrences", lambda *args: [0, 0])
    assert _iou(follow_outline(image, blob, click), disk) < 0.5


def test_the_label_grid_is_read_at_each_frame_pixel():
    labels = np.array([[1, 2, 0], [3, 4, 0]], np.int32)  # the last column lies beyond the frame
    frame = label_map_at(labels, (2.0, 2.0), (4, 6))
    assert frame.shape == (4, 6)
    assert (frame[:2, :3] == 1).all() and (frame[:2, 3:] == 2).all() and (frame[2:, :3] == 3).all()
    assert (frame[2:, 3:] == 4).all()


def test_a_dowel_picked_by_a_click_is_the_support_that_counts_the_dowels():
    """The category set's dowels: a click at the support dowel's middle gave a round blob (IoU 0.27-0.50 with the
    dowel) and then no dowel counted (F1 0); now the dowel's outline (IoU 1.0 on this synthetic scene) and
    F1 0.95, as with a drawn mask."""
    case = next(c for c in category_cases("development", ("elongated",)) if c.name == "dowels on a belt")
    engines = build_routed_engines()
    depth = cv2.distanceTransform(case.support_mask.astype(np.uint8), cv2.DIST_L2, 5)
    y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
    picked = pick_object(engines, case.support_image, (float(x), float(y))).mask
    assert _iou(picked, case.support_mask) > 0.9
    persense = PerSense(engines)
    persense.set_support(case.support_image, picked)
    assert evaluate(persense.segment(case.image), case.labels).f1 >= 0.9


def test_a_pair_of_touching_disks_is_pinched_twice_a_rod_and_an_l_never():
    from engines.anyshape.follow import _pinches

    hw = (120, 160)
    pair = _disk(hw, (60, 60), 20) | _disk(hw, (96, 60), 20)
    rod = np.zeros(hw, bool)
    rod[50:70, 20:140] = True
    ell = np.zeros(hw, bool)
    ell[20:100, 30:50] = True
    ell[80:100, 30:120] = True
    assert _pinches(pair, 20.0) == 2
    assert _pinches(rod, 10.0) == 0
    assert _pinches(ell, 10.0) == 1
