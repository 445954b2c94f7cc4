"""An item's specs: the ranges its figures must lie in (configured, or the one-shot default of a support object's
diameter), and whether an item's figures are in them."""

from __future__ import annotations

import numpy as np

from streamer.stream.tally_config import SpecRange
from streamer.tracking.measure import COLUMN, measure_one, to_mm

__all__ = ["SpecRange", "default_specs", "in_spec", "specs_doc"]


def default_specs(support_mask: np.ndarray | None, scale: float | None, tolerance: float) -> dict[str, SpecRange]:
    """The one-shot spec: the support object's diameter +- `tolerance` (a fraction), in the tally's units."""
    if support_mask is None or not support_mask.any():
        return {}
    pixels = np.zeros(support_mask.shape + (3,), np.uint8)
    diameter = to_mm(measure_one(support_mask, pixels)[None], scale)[0, COLUMN["diameter"]]
    return {"diameter": SpecRange(min=diameter * (1 - tolerance), max=diameter * (1 + tolerance))}


def in_spec(figures: dict[str, float | None], specs: dict[str, SpecRange]) -> bool | None:
    """True when every spec'd figure is in its range, None when one is unknown or there is no spec."""
    if not specs:
        return None
    for name, spec in specs.items():
        value = figures.get(name)
        if value is None:
            return None
        if (spec.min is not None and value < spec.min) or (spec.max is not None and value > spec.max):
            return False
    return True


def specs_doc(specs: dict[str, SpecRange]) -> dict:
    return {k: {"min": v.min, "max": v.max} for k, v in specs.items()}
