"""What the console says a camera is doing, so that stale figures never pass for live ones (issue 25).

One state per camera, the first that applies:

- paused: the operator paused processing; the figures are those of the last frame before the pause.
- reconnecting: the source is connecting, stalled or waiting to reconnect; no new frame comes.
- no_signal: the source is gone for good (ended or stopped).
- not_present: frames come, but the last result counts 0 with a match quality under the presence level: the
  product in front of the camera is not the support's.
- streaming: all is well.

The page adds a sixth, `unreachable`, when the processor itself does not answer. `current` is False where the
figures are not of a frame just seen (a state other than streaming / not_present, or a result older than STALE_S);
the page then greys them and shows their age.
"""

from __future__ import annotations

STALE_S = 2.0  # a result older than this is not "now" (cameras run at 5-60 frames/s)

STREAMING, PAUSED, RECONNECTING, NO_SIGNAL, NOT_PRESENT = "streaming", "paused", "reconnecting", "no_signal", \
    "not_present"
LABELS = {
    STREAMING: "streaming",
    PAUSED: "paused: frames are not processed",
    RECONNECTING: "reconnecting to the source",
    NO_SIGNAL: "no signal: the source is gone",
    NOT_PRESENT: "product not present (match quality under the presence level)",
}
# What the image says, where it says anything.
IMAGE_LABELS = {PAUSED: "PAUSED", RECONNECTING: "NO SIGNAL", NO_SIGNAL: "NO SIGNAL", NOT_PRESENT: "NOT PRESENT"}
_WAITING = {"connecting", "stalled", "reconnecting", "starting"}


def view_state(status: dict, figures: dict, presence_level: float | None) -> dict:
    """status: the processor's camera status (state, paused, ...); figures: LiveView.figures of the camera.
    -> {"view_state", "view_label", "image_label", "current"} to merge into the camera's /api/status entry."""
    source = status.get("state")
    if status.get("paused"):
        state = PAUSED
    elif source in _WAITING:
        state = RECONNECTING
    elif source != "streaming":
        state = NO_SIGNAL
    elif _not_present(figures, presence_level):
        state = NOT_PRESENT
    else:
        state = STREAMING
    age = figures.get("result_age_s")
    fresh = age is not None and age <= STALE_S
    return {
        "view_state": state,
        "view_label": LABELS[state],
        "image_label": IMAGE_LABELS.get(state, ""),
        "current": state in (STREAMING, NOT_PRESENT) and fresh,
        "presence_level": presence_level,
    }


def _not_present(figures: dict, presence_level: float | None) -> bool:
    quality = figures.get("match_quality")
    if presence_level is None or quality is None or figures.get("count") != 0:
        return False
    return quality < presence_level
