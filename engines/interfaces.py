"""The small interfaces every model runtime implements. The pipeline talks only to these.

Coordinates are pixels of the query frame, (x, y) order, unless a docstring says otherwise.
Images are uint8 RGB arrays of shape [H, W, 3].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclass
class ImageEmbedding:
    """An encoder's output for one image.

    Attributes:
        features: float32[C, h, w] feature grid used for the support prototype and the similarity map.
        frame_hw: (H, W) of the image that was encoded.
        valid_hw: (vh, vw) the top-left part of the feature grid that covers the image (SAM pads its
            1024 x 1024 input at the bottom and right; engines without padding use (h, w)).
        payload: engine-private data the same engine's decoder needs (e.g. SAM's image embedding).
    """

    features: np.ndarray
    frame_hw: tuple[int, int]
    valid_hw: tuple[int, int]
    payload: Any = None


@dataclass
class PromptGuidance:
    """What a decoder may know of the support beyond the prompts: target guidance (PerSAM's target-guided
    attention and target-semantic prompting, used by the paper's first decoding pass) and a scale prior.
    Either part may be absent: the feedback pass carries the scale prior only.

    Attributes:
        prototype: float32[C] the support prototype (L2-normalised), or None (no target guidance).
        similarity: float32[h, w] the similarity map on the encoder's feature grid (same grid as
            `ImageEmbedding.features`), or None (no target guidance).
        object_radius: the support object's radius in frame pixels (sqrt(area / pi) of its mask), a scale
            prior for decoders that find an object's extent themselves; None when unknown.
        object_mask: bool[h, w] the support object's mask cropped to its box (support image pixels), for
            decoders that check the shape of what they find; None when unknown.
    """

    prototype: np.ndarray | None
    similarity: np.ndarray | None
    object_radius: float | None = None
    object_mask: np.ndarray | None = None

    @property
    def targeted(self) -> bool:
        """Whether this carries target guidance (prototype and similarity map), not only the scale prior."""
        return self.prototype is not None and self.similarity is not None


@dataclass
class DecoderOutput:
    """Masks for a batch of N single-point prompts, at the decoder's low resolution.

    A decoder returns either per-prompt logits (SAM) or, when it assigns pixels to prompts jointly, one
    label map (cheaper for hundreds of prompts: one grid instead of N).

    Attributes:
        logits: float32[N, K, h, w] mask logits (> 0 is the object), or None when `labels` is given.
        scores: float32[N, K] predicted mask quality; K candidate masks per prompt.
        valid_hw: (vh, vw) the top-left part of the grid that covers the frame, possibly fractional; it
            maps linearly onto the frame's (H, W).
        labels: int32[h, w] with 0 for no prompt and i + 1 for prompt i's mask (then K == 1), or None.
    """

    logits: np.ndarray | None
    scores: np.ndarray
    valid_hw: tuple[float, float]
    labels: np.ndarray | None = None

    def __post_init__(self) -> None:
        if (self.logits is None) == (self.labels is None):
            raise ValueError("DecoderOutput needs exactly one of logits or labels")

    @property
    def grid_hw(self) -> tuple[int, int]:
        grid = self.labels if self.labels is not None else self.logits
        return grid.shape[-2], grid.shape[-1]


@dataclass
class DensityOutput:
    """A density map generator's answer.

    Attributes:
        density: float32[H, W] at frame resolution, non-negative; each object integrates to about one.
        count: the generator's object count estimate C.
    """

    density: np.ndarray
    count: float


@runtime_checkable
class ImageEncoder(Protocol):
    def encode(self, image_rgb: np.ndarray) -> ImageEmbedding:
        """image_rgb: uint8[H, W, 3] -> the image's embedding."""
        ...


@runtime_checkable
class MaskDecoder(Protocol):
    def decode_points(
        self,
        embedding: ImageEmbedding,
        points_xy: np.ndarray,
        guidance: PromptGuidance | None = None,
    ) -> DecoderOutput:
        """Decode N independent positive point prompts (float[N, 2] frame pixels) in one batched call."""
        ...


@runtime_checkable
class SupportModel(Protocol):
    """What an encoder learnt of one support object (see `SupportLearner`)."""

    def similarity(self, embedding: ImageEmbedding) -> np.ndarray:
        """The frame's match to the support: float32[h, w] in [0, 1] over the frame (any grid that maps linearly
        onto it; higher is more like the support). Also tells the same engine set's density map generator and
        decoder which support this frame is matched against."""
        ...


@runtime_checkable
class SupportLearner(Protocol):
    """An encoder that learns the support once (e.g. a pixel classifier and the object's shape) and matches
    frames with that instead of the prototype's cosine similarity. The pipeline asks for it at set_support."""

    def learn_support(self, image_rgb: np.ndarray, mask: np.ndarray) -> SupportModel | None:
        """uint8[H, W, 3] support image, bool[H, W] its object's mask -> the support model, or None where this
        support is best matched by the prototype's cosine similarity."""
        ...


@runtime_checkable
class DensityMapGenerator(Protocol):
    def density(
        self,
        image_rgb: np.ndarray,
        embedding: ImageEmbedding,
        exemplar_boxes: np.ndarray,
    ) -> DensityOutput:
        """exemplar_boxes: float[M, 4] (x0, y0, x1, y1) frame pixels, M >= 1 -> density map and count."""
        ...


@runtime_checkable
class GateDetector(Protocol):
    def detect(self, image_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """-> (boxes float[B, 4] (x0, y0, x1, y1), scores float[B]); most confident first is not required."""
        ...


@dataclass
class EngineSet:
    """The engines one pipeline runs on. `name` identifies the models (used to key caches).

    products_side_by_side: the decoder and the density map generator may serve several products of one frame on
    threads at once (each product over its own `view()` of the frame's payload; the encoder is always called under
    the pipelines' lock). Off unless an engine set says so: an accelerator's execution context is one caller's.
    """

    encoder: ImageEncoder
    decoder: MaskDecoder
    dmg: DensityMapGenerator
    name: str
    products_side_by_side: bool = False


@runtime_checkable
class ClassLabelExtractor(Protocol):
    """The paper's CLE: names the support object (run once per support, not per frame)."""

    name: str  # identifies the model (the label is cached with the prototype under it)

    def extract(self, image_rgb: np.ndarray, mask: np.ndarray) -> str:
        """uint8[H, W, 3] support image, bool[H, W] its object's mask -> the object's name ("" if none found)."""
        ...


@runtime_checkable
class TextPromptedDetector(GateDetector, Protocol):
    """A gate detector that finds what a text names (the paper's grounding detector, prompted with the label)."""

    def set_label(self, label: str) -> None:
        """Detect `label`'s objects from now on (the prompt is the detector's own, e.g. "all <label>.")."""
        ...
