"""Real objects with masks, cut from photographs that scikit-image ships.

Each kind is a list of `Crop`s: an RGB patch of the photograph around one object and the object's mask,
made here by documented classical recipes (not by hand), so the objects are real and their masks exact
enough to score against:
- coins: scikit-image's own region-based recipe on `coins` (watershed of the Sobel elevation), 24 coins;
- nuclei: haematoxylin-stained nuclei of `immunohistochemistry` (colour deconvolution, Otsu threshold),
  compact isolated components only;
- galaxies: compact sources of `hubble_deep_field` (brightness threshold), isolated ones only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi


@dataclass(frozen=True)
class Crop:
    """rgb: uint8[h, w, 3] patch; mask: bool[h, w] the object inside it."""

    rgb: np.ndarray
    mask: np.ndarray

    @property
    def radius(self) -> float:
        return float(np.sqrt(self.mask.sum() / np.pi))


def coins_truth() -> tuple[np.ndarray, np.ndarray]:
    """scikit-image's `coins` as RGB and an instance label map of its 24 coins.

    The reference is scikit-image's documented region-based segmentation of this image (watershed of the
    Sobel elevation from markers below 30 and above 150, holes filled), components under 100 px dropped.
    """
    from skimage import data
    from skimage.filters import sobel
    from skimage.segmentation import watershed

    coins = data.coins()
    markers = np.zeros(coins.shape, np.int32)
    markers[coins < 30] = 1
    markers[coins > 150] = 2
    mask = ndi.binary_fill_holes(watershed(sobel(coins), markers) == 2)
    return np.dstack([coins] * 3), _relabel(ndi.label(mask)[0], min_area=100)


def _relabel(labels: np.ndarray, min_area: int = 1, max_area: int | None = None) -> np.ndarray:
    areas = np.bincount(labels.ravel())
    keep = np.flatnonzero((areas >= min_area) & (areas <= (max_area or areas.max())))
    keep = keep[keep > 0]
    lut = np.zeros(labels.max() + 1, np.int32)
    lut[keep] = np.arange(1, len(keep) + 1)
    return lut[labels]


def crops_from_labels(image: np.ndarray, labels: np.ndarray, margin: int = 3) -> list[Crop]:
    """One Crop per label (objects touching the image border are left out)."""
    crops = []
    h, w = labels.shape
    for index, box in enumerate(ndi.find_objects(labels), start=1):
        if box is None:
            continue
        ys, xs = box
        if ys.start == 0 or xs.start == 0 or ys.stop == h or xs.stop == w:
            continue
        y0, y1 = max(ys.start - margin, 0), min(ys.stop + margin, h)
        x0, x1 = max(xs.start - margin, 0), min(xs.stop + margin, w)
        crops.append(Crop(image[y0:y1, x0:x1].copy(), labels[y0:y1, x0:x1] == index))
    return crops


def coin_crops() -> list[Crop]:
    image, labels = coins_truth()
    return crops_from_labels(image, labels)


def _compact(labels: np.ndarray, min_solidity: float) -> np.ndarray:
    from skimage.measure import regionprops

    keep = np.zeros(labels.max() + 1, bool)
    for region in regionprops(labels):
        keep[region.label] = region.solidity >= min_solidity and region.eccentricity < 0.9
    return _relabel(np.where(keep[labels], labels, 0))


def nucleus_crops() -> list[Crop]:
    """Haematoxylin-stained (blue) nuclei of `immunohistochemistry`: compact, isolated, 60-500 px."""
    from skimage import data
    from skimage.color import rgb2hed
    from skimage.filters import threshold_otsu

    image = data.immunohistochemistry()
    hed = rgb2hed(image)
    haem, dab = hed[..., 0], hed[..., 2]
    # Nuclei of the stroma: haematoxylin without the brown DAB stain around the glands' nuclei.
    mask = (haem > threshold_otsu(haem)) & (dab < np.percentile(dab, 60))
    mask = ndi.binary_opening(mask, iterations=1)
    labels = _relabel(ndi.label(mask)[0], min_area=60, max_area=500)
    return crops_from_labels(image, _compact(labels, 0.9))


def galaxy_crops() -> list[Crop]:
    """Compact sources of `hubble_deep_field`: 40-900 px above the sky, isolated."""
    from skimage import data

    image = data.hubble_deep_field()
    grey = image.mean(axis=2)
    mask = ndi.binary_fill_holes(grey > 45)
    labels = _relabel(ndi.label(mask)[0], min_area=40, max_area=900)
    return crops_from_labels(image, _compact(labels, 0.85), margin=4)
