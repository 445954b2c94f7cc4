"""Which views show the whole item (streamer.tracking.whole_views): exact cases."""

from __future__ import annotations

import numpy as np

from streamer.tracking.whole_views import AGREE_LEAST, AGREE_SHARE, AGREE_TOLERANCE, whole_item_views


def test_the_views_of_the_largest_size_several_views_agree_on():
    # Parts of the item (about 24) in most views, the whole (about 50) in four: the whole's views.
    sizes = np.array([24.0, 50.0, 23.5, 24.2, 49.0, 24.0, 51.0, 23.8, 24.1, 50.5])
    assert whole_item_views(sizes).tolist() == [False, True, False, False, True, False, True, False, False, True]


def test_one_larger_view_is_no_size_agreed_on():
    # A mask leaked into the background once, a merge of two items twice: fewer than three views agree on either.
    sizes = np.array([30.0, 30.5, 80.0, 29.5, 60.0, 30.2, 60.5, 30.1])
    assert whole_item_views(sizes).tolist() == [True, True, False, True, False, True, False, True]


def test_fewer_views_than_an_agreement_needs_or_none_agreeing_are_all_kept():
    assert whole_item_views(np.array([10.0, 40.0])).tolist() == [True, True]
    assert whole_item_views(np.zeros(0)).tolist() == []
    assert whole_item_views(np.array([10.0, 20.0, 40.0, 80.0])).tolist() == [True] * 4
    assert whole_item_views(np.array([np.nan, np.nan, np.nan])).tolist() == [True] * 3


def test_agreement_is_within_the_tolerance_of_the_size_and_needs_its_share_of_the_views():
    assert (AGREE_TOLERANCE, AGREE_LEAST, AGREE_SHARE) == (0.08, 3, 0.2)
    # 100 agrees with 92.5 and 107.5 (7.5%), not with 91.5 and 108.5 (8.5%): three views at 100 need all three.
    assert whole_item_views(np.array([92.5, 100.0, 107.5, 50.0, 50.0, 50.0])).tolist() == [True] * 3 + [False] * 3
    assert whole_item_views(np.array([91.5, 100.0, 108.5, 50.0, 50.0, 50.0])).tolist() == [False] * 3 + [True] * 3
    # 20 views: an agreement needs 4 (20% of them), 3 are not enough.
    three = np.array([100.0] * 3 + [50.0] * 17)
    assert whole_item_views(three).tolist() == [False] * 3 + [True] * 17
    four = np.array([100.0] * 4 + [50.0] * 16)
    assert whole_item_views(four).tolist() == [True] * 4 + [False] * 16
    assert whole_item_views(four, least=5).tolist() == [False] * 4 + [True] * 16
