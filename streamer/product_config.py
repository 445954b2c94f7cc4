"""What makes a product: its support set (paths) and the gate of its boxes. Used by the whole configuration
(the default product) and by each camera that shows a product of its own (`stream.sources[i]`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GateConfig(_Section):
    """Gate boxes for PPSM's box gating: none, a fixed region of interest, or a detector engine."""

    kind: Literal["none", "roi", "detector"] = "none"
    roi: Optional[tuple[float, float, float, float]] = Field(
        None, description="x0, y0, x1, y1 in pixels (values <= 1 are fractions of the frame)"
    )
    detector: Optional[str] = Field(None, description="import path 'module:factory' of a GateDetector engine")
    min_score: float = Field(0.15, ge=0, le=1, description="detections below this confidence are ignored")

    @field_validator("roi")
    @classmethod
    def _roi_ordered(cls, roi):
        if roi is not None and (roi[2] <= roi[0] or roi[3] <= roi[1]):
            raise ValueError("roi must be x0, y0, x1, y1 with x1 > x0 and y1 > y0")
        return roi


class SupportConfig(_Section):
    image: Optional[Path] = None
    mask: Optional[Path] = None
