"""Camera and file sources, and their supervisor.

    source = open_source("rtsp://cam/stream", "cam0", transport="tcp")   # unopened FrameSource
    sup = CameraSupervisor("cam0", lambda: open_source(uri, "cam0"), on_frame, on_state)
"""

from streamer.sources.base import Frame, FrameSource, SourceEnded, SourceError, SourceState
from streamer.sources.redact import redact
from streamer.sources.supervisor import CameraSupervisor
from streamer.sources.uri import open_source, source_kind

__all__ = [
    "CameraSupervisor",
    "Frame",
    "FrameSource",
    "SourceEnded",
    "SourceError",
    "SourceState",
    "open_source",
    "redact",
    "source_kind",
]
