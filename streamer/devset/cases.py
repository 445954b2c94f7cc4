"""The development set of real images: which support goes with which query, and the truth.

Kinds of case:
- same-image: the support is one object of the query (`persense segment` on one photograph);
- cross-image: the support comes from another image of the same kind (the stream's normal case: the
  example was shown once, the camera goes on);
- foreign: the support is of a kind the query does not hold (empty belt, another product): the answer is 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np

from streamer.devset import compose as c
from streamer.devset.crops import coin_crops, coins_truth, galaxy_crops, nucleus_crops


@dataclass
class Case:
    """support_*: the one-shot example; labels: the query's instance truth (zeros for a foreign case)."""

    name: str
    kind: str  # same-image | cross-image | foreign
    support_image: np.ndarray
    support_mask: np.ndarray
    image: np.ndarray
    labels: np.ndarray
    category: str = ""  # the product category (streamer.devset.categories); "" for the sets of this module

    @property
    def count(self) -> int:
        return int(self.labels.max())


def _support(scene: c.Scene, index: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One object of the scene as the support: the one with the largest visible area among the first ten
    (a typical, unoccluded example, as a person would pick), or `index`."""
    if index is None:
        areas = np.bincount(scene.labels.ravel())[1:11]
        index = int(np.argmax(areas)) + 1
    return scene.image, scene.labels == index


@lru_cache(maxsize=None)
def _scenes() -> dict[str, c.Scene]:
    coins, nuclei = coin_crops(), nucleus_crops()
    glow = [c.fluorescent(n) for n in nuclei]
    galaxies = [g for g in galaxy_crops() if g.radius >= 5.0]
    w, h = 640, 480
    coins_image, coins_labels = coins_truth()
    return {
        "coins photo": c.Scene(coins_image, coins_labels),
        "coins on brick": c.compose(coins, c.texture("brick", w, h, (1.1, 0.8, 0.65)), 120, 22, seed=1),
        "coins on gravel": c.compose(coins, c.texture("gravel", w, h), 90, 20, seed=2, lighting=0.35),
        "coins on grass": c.compose(coins, c.texture("grass", w, h, (0.7, 1.0, 0.6)), 220, 13, seed=3),
        "small coins on brick": c.compose(coins, c.texture("brick", 800, 600), 300, 12, seed=4, spacing=0.9),
        "coins in uneven light": c.compose(
            coins, c.texture("grass", w, h, (0.9, 0.75, 0.55)), 60, 24, seed=9, lighting=0.5
        ),
        "nuclei, fluorescence": c.compose(
            glow, c.dark_field(w, h, 5), 125, 11, seed=5, bright_fraction=0.04, brightness=(0.5, 1.1)
        ),
        "nuclei, fluorescence 2": c.compose(
            glow, c.dark_field(w, h, 6), 70, 12, seed=6, bright_fraction=0.06, brightness=(0.5, 1.1)
        ),
        "nuclei on stroma": c.compose(
            nuclei, c.texture("gravel", w, h, (1.0, 0.9, 0.85)), 150, 10, seed=7, lighting=0.15
        ),
        "galaxies": c.compose(galaxies, c.dark_field(w, h, 8, level=6), 100, 9, seed=8, brightness=(0.6, 1.3)),
        "brick, empty": c.Scene(c.texture("brick", w, h), np.zeros((h, w), np.int32)),
    }


def _immunohistochemistry() -> np.ndarray:
    from skimage import data

    return data.immunohistochemistry()


def _case(name: str, kind: str, support: tuple[np.ndarray, np.ndarray], query: str | np.ndarray) -> Case:
    scenes = _scenes()
    if isinstance(query, str):
        image, labels = scenes[query].image, scenes[query].labels
    else:
        image, labels = query, np.zeros(query.shape[:2], np.int32)
    if kind == "foreign":
        labels = np.zeros_like(labels)
    return Case(name, kind, support[0], support[1], image, labels)


def _builders() -> list[Callable[[], Case]]:
    s = _scenes

    def same(name: str) -> Callable[[], Case]:
        return lambda: _case(name, "same-image", _support(s()[name]), name)

    return [
        lambda: _case("coins photo", "same-image", _support(s()["coins photo"], 1), "coins photo"),
        same("coins on brick"),
        same("coins on gravel"),
        same("coins on grass"),
        same("small coins on brick"),
        same("coins in uneven light"),
        same("nuclei, fluorescence"),
        same("nuclei on stroma"),
        same("galaxies"),
        lambda: _case("coins: brick -> gravel", "cross-image", _support(s()["coins on brick"]), "coins on gravel"),
        lambda: _case("coins: photo -> brick", "cross-image", _support(s()["coins photo"], 5), "coins on brick"),
        lambda: _case(
            "nuclei: fluorescence -> fluorescence 2", "cross-image", _support(s()["nuclei, fluorescence"]),
            "nuclei, fluorescence 2",
        ),
        lambda: _case("coin -> fluorescence", "foreign", _support(s()["coins photo"], 1), "nuclei, fluorescence"),
        lambda: _case("nucleus -> coins on brick", "foreign", _support(s()["nuclei, fluorescence"]), "coins on brick"),
        lambda: _case("galaxy -> coins on gravel", "foreign", _support(s()["galaxies"]), "coins on gravel"),
        lambda: _case("coin -> immunohistochemistry", "foreign", _support(s()["coins photo"], 1), _immunohistochemistry()),
        lambda: _case("coin on brick -> empty brick", "foreign", _support(s()["coins on brick"]), "brick, empty"),
    ]


def development_cases() -> list[Case]:
    """Every case of the development set (built on first use, a few seconds)."""
    return [build() for build in _builders()]


@lru_cache(maxsize=None)
def _validation_scenes() -> dict[str, c.Scene]:
    coins, nuclei = coin_crops(), nucleus_crops()
    glow = [c.fluorescent(n) for n in nuclei]
    w, h = 640, 480
    return {
        "nuclei, dividing": c.compose(
            glow, c.dark_field(w, h, 11), 125, 11, seed=11, bright_fraction=0.05, bright_gain=4.0,
            brightness=(0.4, 1.0),
        ),
        "coins on grey brick": c.compose(coins, c.texture("brick", w, h), 140, 18, seed=12, lighting=0.25),
        "coins on gravel, dense": c.compose(coins, c.texture("gravel", w, h), 90, 21, seed=13, spacing=0.9),
        "coins on grass, sparse": c.compose(coins, c.texture("grass", w, h, (0.75, 1.0, 0.6)), 100, 16, seed=14),
    }


def validation_cases() -> list[Case]:
    """A second set made the same way with other seeds, densities and textures, kept apart from tuning: a
    check that what holds on the development set is not fitted to it."""
    s = _validation_scenes()

    def case(name: str, kind: str, support: tuple[np.ndarray, np.ndarray], query: str) -> Case:
        labels = np.zeros_like(s[query].labels) if kind == "foreign" else s[query].labels
        return Case(name, kind, support[0], support[1], s[query].image, labels)

    return [
        case("nuclei, dividing", "same-image", _support(s["nuclei, dividing"]), "nuclei, dividing"),
        case("coins on grey brick", "same-image", _support(s["coins on grey brick"]), "coins on grey brick"),
        case("coins: grey brick -> gravel", "cross-image", _support(s["coins on grey brick"]),
             "coins on gravel, dense"),
        case("coins on grass, sparse", "same-image", _support(s["coins on grass, sparse"]), "coins on grass, sparse"),
        case("nucleus -> grey brick", "foreign", _support(s["nuclei, dividing"]), "coins on grey brick"),
        case("coin -> dividing nuclei", "foreign", _support(s["coins on grey brick"]), "nuclei, dividing"),
    ]
