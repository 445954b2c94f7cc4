"""A development set of real images for one-shot counting and segmentation (needs scikit-image)."""

from streamer.devset.cases import Case, development_cases

__all__ = ["Case", "development_cases"]
