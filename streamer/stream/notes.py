"""What an operator needs to trust a result, added on the inference thread before anyone else sees it.

- The truth of the product in force: the simulator knows the exact count of each kind of object it draws
  (Frame.truth_kinds). After a pick of the other kind, the result must carry that kind's truth, not the
  original product's; after a support whose kind nobody knows (an upload), it carries none rather than a wrong one.
- A `reason` on a count that collapsed: a result whose count is 0, or under FAR_BELOW of the camera's recent
  median, says why (docs/stream-protocol.md lists the reasons), so that a dashboard can tell an empty belt or a
  foreign product from a frame the pipeline lost.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import replace

import numpy as np

from streamer.sources.base import Frame
from streamer.types import SegmentationResult

PRODUCT, DISTRACTOR = "product", "distractor"
RECENT = 60  # results of a camera the median is taken over (a few seconds at camera rates)
FAR_BELOW = 0.6  # a count under this fraction of the recent median is a collapse to explain (a frame under half
# the truth is under 0.6 of a median that runs ~7% under the truth, as the embedded engines' median does on the simulator)
MIN_MEDIAN = 4  # below this median, ups and downs are the belt's own, not collapses

# The reasons' codes (the text after the colon gives the figures); documented in docs/stream-protocol.md.
NOT_PRESENT = "not_present"
NOTHING_FOUND = "nothing_found"
FAR_BELOW_MEDIAN = "far_below_median"


def kind_at(scene, mask: np.ndarray) -> str | None:
    """Which kind of the simulator's objects a picked mask lies on (most of its pixels), or None (the belt, or no
    scene to ask)."""
    if hasattr(scene, "kind_at"):  # the products mix (streamer.simulator.mix): its kinds by name
        return scene.kind_at(mask)
    mask = np.asarray(mask, bool)
    pixels = int(np.count_nonzero(mask))
    if scene is None or pixels == 0 or mask.shape != scene.image.shape[:2]:
        return None
    on_product = int(np.count_nonzero(scene.labels[mask]))
    on_other = int(np.count_nonzero(scene.distractors[mask]))
    if max(on_product, on_other) * 2 < pixels:
        return None
    return PRODUCT if on_product >= on_other else DISTRACTOR


class TruthInForce:
    """support id -> the kind of object it shows; thread-safe. Unknown supports get no truth."""

    def __init__(self):
        self._kinds: dict[str, str | None] = {}
        self._lock = threading.Lock()

    def note(self, support_id: str, kind: str | None) -> None:
        with self._lock:
            self._kinds[support_id] = kind

    def kind(self, support_id: str) -> str | None:
        with self._lock:
            return self._kinds.get(support_id)

    def adjust(self, frame: Frame, support_id: str) -> Frame:
        """The frame with the truth of the product in force (or none where its kind is not known)."""
        if frame.truth_kinds is None:
            return frame
        kind = self.kind(support_id)
        if kind == PRODUCT:
            return frame
        count = frame.truth_kinds.get(kind) if kind else None
        # The per-item truth (items passing a line) is of the simulator's product only.
        return replace(frame, truth_count=count, truth=None)


class CollapseReasons:
    """Per camera, the recent counts; `reason` explains a result that counts 0 or far under their median."""

    def __init__(self, presence_threshold: float | None):
        self.presence_threshold = presence_threshold
        self._recent: dict[str, deque[int]] = {}

    def reason(self, camera: str, result: SegmentationResult) -> str:
        recent = self._recent.setdefault(camera, deque(maxlen=RECENT))
        median = float(np.median(recent)) if recent else 0.0
        recent.append(result.count)
        collapsed = result.count == 0 or (median >= MIN_MEDIAN and result.count < FAR_BELOW * median)
        if not collapsed or result.reason:
            return result.reason  # a gate's own reason says more than ours
        quality = float(result.match_quality)
        threshold = self.presence_threshold
        if result.count == 0 and threshold is not None and quality != 0.0 and quality < threshold:
            return (f"{NOT_PRESENT}: match quality {quality:.2f} under the presence level {threshold:.2f} "
                    "(the objects do not look like the support)")
        if result.count == 0:
            return f"{NOTHING_FOUND}: no object like the support was found (recent median {median:g})"
        return (f"{FAR_BELOW_MEDIAN}: {result.count} found, the recent median is {median:g} "
                f"(match quality {quality:.2f})")


class NotingSink:
    """The inference thread's first sink: notes truth and reasons, then hands the result on."""

    def __init__(self, sink, truth: TruthInForce, reasons: CollapseReasons):
        self.sink, self.truth, self.reasons = sink, truth, reasons

    def submit(self, frame: Frame, result: SegmentationResult, support_id: str, wait: bool = False) -> bool:
        if result.products and frame.truth_kinds is not None:
            frame = self._product_truth(frame, result)
        else:
            frame = self.truth.adjust(frame, support_id)
        result.reason = self.reasons.reason(frame.camera, result)
        return self.sink.submit(frame, result, support_id, wait=wait)

    def _product_truth(self, frame: Frame, result: SegmentationResult) -> Frame:
        """Each product's truth in its figures, where its kind is known: the kind of its support (a pick on the
        simulator), or on the products mix a product named as one of its kinds. The frame's truth is then the
        products' together, as the result's count is (None unless every product's is known)."""
        counts = []
        for name, figures in result.products.items():
            kind = self.truth.kind(figures.get("support_id", ""))
            if kind in (None, PRODUCT) and name in frame.truth_kinds:
                kind = name
            count = frame.truth_count if kind == PRODUCT else frame.truth_kinds.get(kind) if kind else None
            if count is not None:
                figures["truth_count"] = int(count)
            counts.append(count)
        total = sum(counts) if all(c is not None for c in counts) else None
        return replace(frame, truth_count=total, truth=None)

    def __getattr__(self, name):
        # The tally sink's set_support and the like stay reachable through this wrapper.
        return getattr(self.sink, name)
