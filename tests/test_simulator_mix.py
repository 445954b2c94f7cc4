"""The simulator's products mix (streamer/simulator/mix.py): exact truth per kind, determinism, the examples an
operator would pick, and the sim: source that serves it."""

import numpy as np
import pytest

from streamer.errors import UserError
from streamer.simulator.mix import PRODUCTS_MIX, Kind, MixedConveyor, check_mix
from streamer.sources.uri import open_source


def test_every_kind_has_exact_disjoint_truth_and_frames_repeat():
    mix = MixedConveyor(width=320, height=240, n_objects=30, seed=4)
    scene = mix.frame(5)
    assert np.array_equal(scene.image, MixedConveyor(width=320, height=240, n_objects=30, seed=4).frame(5).image)
    assert set(scene.counts) == {k.name for k in PRODUCTS_MIX} and all(n > 0 for n in scene.counts.values())
    seen = np.zeros(scene.image.shape[:2], bool)
    for name, count in scene.counts.items():
        labels = scene.labels_of(name)
        assert len(np.unique(labels[labels > 0])) == count == labels.max()
        assert not (seen & (labels > 0)).any()  # no pixel is two objects'
        seen |= labels > 0
        one = labels == 1
        assert scene.kind_at(one) == name
    assert scene.kind_at(~seen) is None  # the belt
    assert mix.products == ("biscuit", "tile", "soap")


def test_an_example_is_a_whole_object_of_its_kind_among_the_others():
    mix = MixedConveyor(width=320, height=240, n_objects=30)
    for name in ("tile", "candy"):
        image, mask = mix.support(name)
        scene = mix.frame(0)
        assert np.array_equal(image, scene.image) and scene.kind_at(mask) == name
        labels = scene.labels_of(name)
        label = int(np.bincount(labels[mask]).argmax())
        assert np.array_equal(mask, labels == label)  # all of one object, nothing else
    with pytest.raises(ValueError, match="no kind 'nut'"):
        mix.support("nut")


def test_a_mix_names_its_kinds_once_and_look_alikes_resemble_one_of_them():
    with pytest.raises(ValueError, match="distinct names"):
        check_mix((Kind("a", "rod", (0, 1, 1), 1), Kind("a", "star", (0, 1, 1), 1)))
    with pytest.raises(ValueError, match="look-alike of 'b'"):
        check_mix((Kind("a", "rod", (0, 1, 1), 1, look_alike_of="b"),))


def test_the_sim_source_serves_the_mix_with_truth_per_kind():
    source = open_source("sim:?scene=products&width=320&height=240&objects=30&fps=0", "cam0")
    source.open()
    frame = source.read(1.0)
    assert set(frame.truth_kinds) == {"biscuit", "tile", "soap", "candy"}
    assert frame.truth_count == frame.truth_kinds["biscuit"]  # the default product: the mix's first
    assert frame.truth_scene.kind_at(source.example("soap")[1]) == "soap"
    for bad in ("sim:?scene=products&flow=1", "sim:?scene=products&shape=rod"):
        with pytest.raises(UserError, match="products mix"):
            open_source(bad, "cam0")
    with pytest.raises(UserError, match="products mix"):
        open_source("sim:?objects=5", "cam0").example("candy")
