"""A two-class appearance model on the working-grid descriptors: the target vs everything else.

The target class is one diagonal Gaussian fitted on reference cells (the exemplars' insides, or the
prompts' neighbourhoods), with spreads that tolerate the brightness and shading changes same-kind objects
show. Everything else (belt, uneven background, objects of other kinds) is a small mixture fitted by
k-means on the cells that are clearly not the target. A cell is foreground when it is nearer the target
than every rest component (each in its own scale) and not far from the target in absolute terms, so an
object of a third kind is not foreground just because it is even farther from the background.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engines.embedded.features import DESCRIPTOR_FLOOR, thin, INTENSITY, RED_GREEN, TEXTURE, YELLOW_BLUE

# Cells farther than this from the target (standardized Euclidean distance) fit the rest.
_REST_DISTANCE = 4.5
# Absolute limit of the target class (same units): beyond it a cell is another kind of object.
_MAX_DISTANCE = 4.5
# Same-kind objects vary in brightness (lighting, wear) more than in colour: intensity spread >= this fraction.
_INTENSITY_REL_FLOOR = 0.2
# Highlights and shading also move chromaticity a little: chroma spread >= this fraction of the chroma.
_CHROMA_REL_FLOOR = 0.12
# Texture varies even more (engraving, wear).
_TEXTURE_REL_FLOOR = 0.35
_REST_COMPONENTS = 3
# Chroma contrast (target stds) between target and rest above which colour segmentation is trusted.
COLOUR_CONTRAST = 4.0
# Rest components nearer than this to the target's chroma (target stds) are dropped, unless the target is grey.
_SAME_COLOUR = 2.0
_GREY_CHROMA = 0.06
_REST_SAMPLES = 1200


@dataclass
class Gaussian:
    """A diagonal Gaussian over descriptors: mean float32[D], std float32[D]."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit_target(cls, samples: np.ndarray) -> "Gaussian":
        """samples: float[D, M] -> median and the 5-95% range as +-1.645 std, with floors.

        The range, not the MAD, so that an object's highlights and shaded rim stay inside its class;
        the 5% tails leave out the few background cells a loose exemplar box lets in.
        """
        lo, med, hi = np.percentile(thin(samples), [5, 50, 95], axis=1)
        floor = DESCRIPTOR_FLOOR.copy()
        floor[INTENSITY] = max(floor[INTENSITY], _INTENSITY_REL_FLOOR * med[INTENSITY])
        floor[TEXTURE] = max(floor[TEXTURE], _TEXTURE_REL_FLOOR * med[TEXTURE])
        chroma = float(np.hypot(med[RED_GREEN], med[YELLOW_BLUE]))
        floor[[RED_GREEN, YELLOW_BLUE]] = np.maximum(floor[[RED_GREEN, YELLOW_BLUE]], _CHROMA_REL_FLOOR * chroma)
        return cls(med.astype(np.float32), np.maximum((hi - lo) / (2 * 1.645), floor).astype(np.float32))

    @classmethod
    def fit_robust(cls, samples: np.ndarray) -> "Gaussian":
        """samples: float[D, M] -> median and scaled MAD (a rest component's main mode), with floors."""
        samples = thin(samples)
        med = row_median(samples)
        mad = row_median(np.abs(samples - med[:, None])) * 1.4826
        return cls(med.astype(np.float32), np.maximum(mad, DESCRIPTOR_FLOOR).astype(np.float32))

    def distance(self, data: np.ndarray) -> np.ndarray:
        """float[D, ...] -> float32[...] standardized Euclidean distance (0 at the mean)."""
        return np.sqrt(self.squared_distance(data))

    def squared_distance(self, data: np.ndarray, scratch: np.ndarray | None = None) -> np.ndarray:
        """float32[D, ...] -> float32[...] the squared standardized distance (in place on one scratch array:
        this runs several times per frame over the whole grid)."""
        total = np.zeros(data.shape[1:], np.float32)
        z = np.empty(data.shape[1:], np.float32) if scratch is None else scratch
        for channel, mean, std in zip(data, self.mean, self.std):
            np.subtract(channel, np.float32(mean), out=z)
            z *= np.float32(1.0 / std)
            z *= z
            total += z
        return total


@dataclass
class Foreground:
    """Per-cell target probability (float32[h, w], 0..1) and the fitted classes."""

    prob: np.ndarray
    target: Gaussian
    rest: list[Gaussian]
    rest_median: np.ndarray | None = None  # float32[D] median descriptor of the clearly-not-target cells

    @property
    def colour_distinct(self) -> bool:
        """Colour alone tells the target from its surroundings (else: a grey-on-grey scene)."""
        return self.colour_contrast() >= COLOUR_CONTRAST

    def colour_contrast(self) -> float:
        """Chroma distance (target standard deviations) between the target and the typical rest cell.

        Large: colour alone tells the target from its surroundings; small: a grey-on-grey scene.
        """
        if self.rest_median is None:
            return 0.0
        return _chroma_distance(self.rest_median, self.target)


def fit_rest(samples: np.ndarray, scale: np.ndarray) -> list[Gaussian]:
    """k-means (in units of `scale`) on float[D, M] rest samples -> up to 3 robust components."""
    samples = thin(samples, _REST_SAMPLES)
    z = samples / scale[:, None]
    # Deterministic start: the samples at spread-out intensity quantiles.
    order = np.argsort(z[INTENSITY], kind="stable")
    k = min(_REST_COMPONENTS, z.shape[1])
    centres = z[:, order[np.linspace(0, z.shape[1] - 1, k).astype(int)]]
    for _ in range(3):
        # [k, D, M]: the long sample axis innermost, so each step is a few whole-array operations.
        diff = z[None, :, :] - centres.T[:, :, None]
        diff *= diff
        assign = np.argmin(diff.sum(axis=1), axis=0)
        # Every cluster's mean at once: one bincount per descriptor, not a selection per cluster.
        counts = np.bincount(assign, minlength=k)
        filled = counts > 0
        for d in range(len(z)):
            centres[d, filled] = np.bincount(assign, z[d], minlength=k)[filled] / counts[filled]
    components = []
    for c in range(k):
        if counts[c] >= 8:
            components.append(Gaussian.fit_robust(samples[:, assign == c]))
    return components


def foreground(data: np.ndarray, reference: np.ndarray) -> Foreground:
    """Fit the target on `reference` cells (bool[h, w] or float[D, M] samples) and classify every cell.

    Args:
        data: float32[D, h, w] descriptors.
        reference: bool[h, w] mask of target cells, or float[D, M] target samples.
    """
    samples = data[:, reference] if reference.dtype == bool else reference
    if samples.shape[1] == 0:
        target = Gaussian(data.mean(axis=(1, 2)).astype(np.float32), DESCRIPTOR_FLOOR)
        return Foreground(np.zeros(data.shape[1:], np.float32), target, [])
    target = Gaussian.fit_target(samples)
    data = np.ascontiguousarray(data, np.float32)
    scratch = np.empty(data.shape[1:], np.float32)
    d_target = np.sqrt(target.squared_distance(data, scratch))
    # The far cells' indices, strided like `thin`: no [D, M] copy of every far cell.
    far = np.flatnonzero(d_target.ravel() > _REST_DISTANCE)
    enough = len(far) >= 16
    step = max(-(-len(far) // _REST_SAMPLES), 1)
    rest_samples = data.reshape(len(data), -1)[:, far[::step]]
    rest = fit_rest(rest_samples, target.std) if enough else []
    # A rest component of the target's own colour is the target's shaded or highlighted tail, not the rest.
    grey = float(np.hypot(target.mean[RED_GREEN], target.mean[YELLOW_BLUE])) < _GREY_CHROMA
    rest = [c for c in rest if grey or _chroma_distance(c.mean, target) >= _SAME_COLOUR]
    rest_median = row_median(rest_samples).astype(np.float32) if enough else None
    if rest:
        d_rest = rest[0].squared_distance(data, scratch)
        for component in rest[1:]:
            np.minimum(d_rest, component.squared_distance(data, scratch), out=d_rest)
        margin = np.sqrt(d_rest, out=d_rest)
        margin -= d_target
    else:
        margin = np.full(d_target.shape, 2.0, np.float32)
    margin *= np.float32(2.5)
    prob = _sigmoid(margin)
    np.subtract(np.float32(_MAX_DISTANCE), d_target, out=d_target)
    d_target *= np.float32(3.0)
    prob *= _sigmoid(d_target)
    return Foreground(prob, target, rest, rest_median)


def _chroma_distance(descriptor: np.ndarray, target: Gaussian) -> float:
    chroma = [RED_GREEN, YELLOW_BLUE]
    z = (descriptor[chroma] - target.mean[chroma]) / target.std[chroma]
    return float(np.hypot(*z))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """float32[...] -> float32[...] logistic function; overwrites `x`."""
    np.clip(x, -30, 30, out=x)
    np.negative(x, out=x)
    np.exp(x, out=x)
    x += np.float32(1.0)
    return np.reciprocal(x, out=x)


def row_median(values: np.ndarray) -> np.ndarray:
    """float[D, M] -> float[D] the median of each row (np.median's result, without its per-call overhead)."""
    m = values.shape[1]
    half = m // 2
    if m % 2:
        return np.partition(values, half, axis=1)[:, half]
    part = np.partition(values, (half - 1, half), axis=1)
    return (part[:, half - 1] + part[:, half]) / 2
