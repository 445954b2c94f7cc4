"""The development set of real images (python -m streamer.devset prints its table) through the real
pipeline with the embedded engines.

The bounds are the figures measured when the set was made, less a margin: a change that loses what the
engines already do on real images fails here. Where the engines fall short of the product's bars (see the
README's table) the bound is what they do today, not the bar.
"""

from __future__ import annotations

import pytest

pytest.importorskip("skimage")

from streamer.devset import development_cases  # noqa: E402
from streamer.devset.__main__ import run_case  # noqa: E402


@pytest.fixture(scope="module")
def results():
    return {case.name: (case, run_case(case)) for case in development_cases()}


def test_the_set_has_the_required_breadth(results):
    kinds = [case.kind for case, _ in results.values()]
    images = {hash(case.image.tobytes()) for case, _ in results.values()}
    assert len(images) >= 12, len(images)
    assert kinds.count("cross-image") >= 2 and kinds.count("foreign") >= 3


def test_every_foreign_support_counts_at_most_two(results):
    for case, result in results.values():
        if case.kind == "foreign":
            assert result.counted <= 2, (case.name, result)


# name -> (least F1, largest relative count error)
BOUNDS = {
    "coins photo": (0.95, 0.05),
    "nuclei, fluorescence": (0.75, 0.25),
    "nuclei: fluorescence -> fluorescence 2": (0.68, 0.25),
    "coins on brick": (0.5, 0.25),
    "coins: photo -> brick": (0.5, 0.25),
    "coins on grass": (0.45, 0.25),
}


@pytest.mark.parametrize("name", sorted(BOUNDS))
def test_cases_hold_their_measured_quality(results, name):
    least_f1, worst_error = BOUNDS[name]
    case, result = results[name]
    assert result.f1 >= least_f1, result
    assert result.count_error <= worst_error, result


def test_objects_of_the_supports_kind_match_well(results):
    for name in BOUNDS:
        _, result = results[name]
        assert result.match_quality >= 0.6, result
