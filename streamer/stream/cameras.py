"""How the processor makes each camera's sources from its configuration."""

from __future__ import annotations

from typing import Callable

from streamer.sources import FrameSource, open_source, source_kind
from streamer.stream.config import SourceConfig


def default_source_factory(source: SourceConfig) -> Callable[[], FrameSource]:
    """-> a zero-argument callable making a fresh, unopened source (one per connection attempt).

    A bad URI or option fails here, at start, in one line (UserError), not in the camera's thread.
    """
    options = dict(source.options)
    if source.loop:
        options["loop"] = True
    if source_kind(source.uri) == "file" and not source.every_frame and not {"realtime", "fps"} & options.keys():
        # Read unpaced, a file would outrun inference and nearly every frame would be dropped as stale;
        # played at its own rate it behaves like the camera it stands in for.
        options["realtime"] = True
    open_source(source.uri, source.camera_id, **options)
    return lambda: open_source(source.uri, source.camera_id, **options)
