"""What makes a product: its support set (paths) and the gate of its boxes. Used by the whole configuration
(the default product) and by each camera that shows a product of its own (`stream.sources[i]`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GroundingGateConfig(_Section):
    """The paper's grounding detector: Grounding DINO prompted with "all <label>."."""

    model_dir: Path = Field(description="a Hugging Face Grounding DINO checkpoint directory (e.g. "
                            "IDEA-Research/grounding-dino-tiny), or for onnxruntime `persense export grounding`'s")
    backend: Literal["torch", "onnxruntime"] = "torch"
    device: str = Field("cpu", description="torch device for backend torch: cpu, cuda, ...")
    box_threshold: float = Field(0.15, ge=0, le=1, description="a box's confidence must pass this (paper: 15%)")
    text_threshold: float = Field(0.25, ge=0, le=1, description="the label's tokens' probability must pass this")


class GateConfig(_Section):
    """Gate boxes for PPSM's box gating: none, a fixed region of interest, a detector engine, or the paper's
    grounding detector."""

    kind: Literal["none", "roi", "detector", "grounding"] = "none"
    roi: Optional[tuple[float, float, float, float]] = Field(
        None, description="x0, y0, x1, y1 in pixels (values <= 1 are fractions of the frame)"
    )
    detector: Optional[str] = Field(None, description="import path 'module:factory' of a GateDetector engine")
    min_score: float = Field(0.15, ge=0, le=1, description="detections below this confidence are ignored")
    grounding: Optional[GroundingGateConfig] = None
    every_n_frames: int = Field(
        1, ge=1, le=10_000, description="detector gates: detect on every N-th frame, reuse its boxes in between"
    )

    @field_validator("roi")
    @classmethod
    def _roi_ordered(cls, roi):
        if roi is not None and (roi[2] <= roi[0] or roi[3] <= roi[1]):
            raise ValueError("roi must be x0, y0, x1, y1 with x1 > x0 and y1 > y0")
        return roi


class ExampleConfig(_Section):
    """One example object: an image and its mask, or on the simulator's products mix (sim:?scene=products) the
    simulator's example of one of its kinds."""

    image: Optional[Path] = None
    mask: Optional[Path] = None
    kind: Optional[str] = Field(None, max_length=64, description="the simulator's example of this kind of its "
                                "objects (sim:?scene=products) instead of image and mask")


class SupportConfig(_Section):
    image: Optional[Path] = None
    mask: Optional[Path] = None
    label: Optional[str] = Field(
        None, max_length=64, description="the object's name (e.g. potato): skips the class-label extractor; it "
        "names every support of the run, also one replaced while running"
    )

    negatives: list[ExampleConfig] = Field(
        default_factory=list, max_length=16, description="examples of what the product is not (\"not this\"): "
        "objects that look more like one of them than like the support are not counted (docs/products.md)")

    @field_validator("label")
    @classmethod
    def _label_named(cls, label):
        if label is not None and not label.strip():
            raise ValueError("support.label is empty: name the object (e.g. potato) or leave it out")
        return label


class ProductConfig(_Section):
    """One of several products a camera counts (`stream.sources[i].products`, docs/products.md)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$",
                      description="names the product in results, metrics and requests: 1-64 letters, digits, _ . -")
    support: SupportConfig = Field(default_factory=SupportConfig, description="its example (image and mask, its "
                                   "label and negatives); without image and mask, on the simulator's products mix, "
                                   "the simulator's example of the kind of that name")


def check_products(products: list[ProductConfig] | None, has_support: bool, max_products: int | None = None) -> None:
    """ValueError (one line) for a products list that names no product, names one twice, lists more than
    `max_products`, or stands beside a support (one product, or several: not both)."""
    if products is None:
        return
    names = [p.name for p in products]
    if not names:
        raise ValueError("products lists no product: name at least one, or leave products out")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"two products are named {twice[0]!r}: product names must differ")
    if max_products is not None and len(names) > max_products:
        raise ValueError(f"{len(names)} products are listed; at most stream.max_products = {max_products}")
    if has_support:
        raise ValueError("give either support (one product) or products (several), not both")
