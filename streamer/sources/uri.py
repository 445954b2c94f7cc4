"""open_source: a source URI (and options) -> an unopened FrameSource.

    video.mp4 | frames/ | rtsp://[user:pw@]host/path | v4l2:0 | /dev/video0 | gige: | gige:NAME
    | sim: | sim:?objects=60&fps=30&width=640&height=480 | sim:?flow=1&px_per_mm=2 | sim:?shape=rod
    | sim:?scene=shapes | archive:PATH[?camera=cam0&realtime=0]

Options come from the config's `options:` (or the URI query for sim:) and are checked per kind: an
unknown option or a bad value is a UserError naming the known ones. Nothing is opened here; the
supervisor opens (and reopens) the source.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qsl, urlsplit

from streamer.errors import UserError
from streamer.sources.base import FrameSource
from streamer.sources.redact import redact

log = logging.getLogger(__name__)

SCHEMES_HELP = "a video file, an image folder, rtsp://..., v4l2:N, /dev/videoN, gige:NAME, sim:?... or archive:PATH"

# Per kind: option name -> type. Values from YAML or a query string are converted to these.
_OPTIONS: dict[str, dict[str, Callable[[Any], Any]]] = {
    "file": {"realtime": bool, "fps": float},
    "folder": {"fps": float},
    "rtsp": {"transport": str, "open_timeout": float, "read_timeout": float, "analyzeduration": float},
    "v4l2": {"width": int, "height": int, "fps": float, "fourcc": str},
    "gige": {"pixel_format": str, "width": int, "height": int, "fps": float, "n_buffers": int,
             "packet_size": int},
    "sim": {"width": int, "height": int, "objects": int, "distractors": int, "speed": float, "seed": int,
            "fps": float, "frames": int, "flow": bool, "px_per_mm": float, "shape": str, "scene": str, "mix": bool,
            "out_of_spec": float},
    "archive": {"camera": str, "realtime": bool},
}
_ALIASES = {"rtsp_transport": "transport"}


def source_kind(uri: str) -> str:
    """'file', 'folder', 'rtsp', 'v4l2', 'gige', 'sim' or 'archive'; UserError for anything else."""
    text = uri.strip()
    if not text:
        raise UserError(f"empty source; use {SCHEMES_HELP}")
    lower = text.lower()
    if lower.startswith(("rtsp://", "rtsps://")):
        return "rtsp"
    if lower.startswith("v4l2:") or lower.startswith("/dev/video") or lower.startswith("/dev/v4l/"):
        return "v4l2"
    if lower.startswith("gige:"):
        return "gige"
    if lower == "sim" or lower.startswith("sim:"):
        return "sim"
    if lower.startswith("archive:"):
        return "archive"
    path = Path(text[len("file://"):] if lower.startswith("file://") else text).expanduser()
    if path.is_dir():
        return "folder"
    if path.is_file():
        return "file"
    if path.exists():  # a FIFO, a device or a socket: reading it would block the camera for ever
        raise UserError(f"source {redact(text)} is not a regular file")
    scheme = text.split(":", 1)[0] if "://" in text or (":" in text and "/" not in text.split(":", 1)[0]) else ""
    if scheme and len(scheme) > 1:
        raise UserError(f"unknown source scheme '{scheme}:' in {redact(text)}; use {SCHEMES_HELP}")
    raise UserError(f"source not found: {redact(text)} (no such file or folder)")


def _convert(kind: str, raw: dict[str, Any]) -> dict[str, Any]:
    spec = _OPTIONS[kind]
    options: dict[str, Any] = {}
    for key, value in raw.items():
        name = _ALIASES.get(key, key)
        if name not in spec:
            known = ", ".join(sorted(spec)) or "none"
            raise UserError(f"unknown option '{key}' for a {kind} source (known: {known})")
        if value is None:
            continue
        try:
            options[name] = _to_bool(value) if spec[name] is bool else spec[name](value)
        except (TypeError, ValueError):
            raise UserError(f"{kind} source option {key}={value!r} is not a valid {spec[name].__name__}") from None
    return options


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(value)


def open_source(uri: str, camera_id: str, loop: bool = False, **options: Any) -> FrameSource:
    """A fresh, unopened source for `uri` (see the module doc); UserError with one line for bad input.

    Args:
        uri: where the frames come from.
        camera_id: stamped on every frame.
        loop: file and folder sources start again at the end (ignored, with a warning, for live ones).
        options: per-kind options (see _OPTIONS); `rtsp_transport` is accepted for `transport`.
    """
    kind = source_kind(uri)
    text = uri.strip()
    if kind == "sim":
        rest = text[4:].lstrip("/") if text.lower().startswith("sim:") else ""
        if rest and not rest.startswith("?"):
            raise UserError(f"sim options go after '?', e.g. sim:?objects=60&fps=30 (got {text})")
        query = rest[1:]
        merged = {k: v for k, v in parse_qsl(query, keep_blank_values=True)}
        merged.update(options)
        options = merged
    if kind == "archive":
        rest = text[len("archive:"):]
        path, _, query = rest.partition("?")
        options = {**dict(parse_qsl(query, keep_blank_values=True)), **options}
    opts = _convert(kind, options)
    if kind == "archive":
        from streamer.archive.layout import check_archive_dir
        from streamer.archive.source import ArchiveSource

        if not path:
            raise UserError("archive: names no archive directory (archive:PATH)")
        check_archive_dir(Path(path), create=False)
        return ArchiveSource(Path(path).expanduser(), camera_id, loop=loop, **opts)
    if loop and kind not in ("file", "folder"):
        log.warning("camera %s: loop applies to files and folders only; ignored for %s", camera_id, redact(text))

    if kind == "file":
        from streamer.sources.files import VideoFileSource

        path = Path(text[len("file://"):] if text.lower().startswith("file://") else text).expanduser()
        return VideoFileSource(path, camera_id, loop=loop, **opts)
    if kind == "folder":
        from streamer.sources.files import ImageFolderSource

        return ImageFolderSource(Path(text).expanduser(), camera_id, loop=loop, **opts)
    if kind == "rtsp":
        from streamer.sources.capture import RtspSource

        _check_rtsp_address(text)
        if opts.get("transport") not in (None, "tcp", "udp"):
            raise UserError(f"rtsp transport must be tcp or udp, got {opts['transport']!r}")
        return RtspSource(text, camera_id, **opts)
    if kind == "v4l2":
        from streamer.sources.capture import V4l2Source

        return V4l2Source(text, camera_id, **opts)
    if kind == "gige":
        from streamer.sources.gige import AravisSource

        name = text[len("gige:"):].lstrip("/")
        return AravisSource(name or None, camera_id, **opts)
    from streamer.sources.sim import SimulatorSource

    opts = _with_scene(opts)
    _check_sim(opts)
    return SimulatorSource(camera_id, **opts)


def _with_scene(opts: dict[str, Any]) -> dict[str, Any]:
    """sim options with a named `scene` replaced by the options it stands for (those given beside it win)."""
    from streamer.simulator.shapes import SCENES

    opts = dict(opts)
    name = opts.pop("scene", "default")
    if name not in SCENES:
        raise UserError(f"sim: unknown scene {name!r}; choose one of {', '.join(SCENES)}")
    return {**SCENES[name], **opts}


def _check_sim(opts: dict[str, Any]) -> None:
    from streamer.simulator.shapes import PRODUCT_SHAPES

    for key in ("width", "height"):
        if key in opts and not 32 <= opts[key] <= 8192:
            raise UserError(f"sim: {key} must be between 32 and 8192, got {opts[key]}")
    for key in ("objects", "distractors"):
        if key in opts and not 0 <= opts[key] <= 10000:
            raise UserError(f"sim: {key} must be between 0 and 10000, got {opts[key]}")
    if opts.get("objects") == 0:
        raise UserError("sim: objects must be at least 1")
    if "fps" in opts and not (math.isfinite(opts["fps"]) and opts["fps"] >= 0):
        raise UserError(f"sim: fps must be 0 (as fast as possible) or more, got {opts['fps']}")
    if "px_per_mm" in opts and not (math.isfinite(opts["px_per_mm"]) and opts["px_per_mm"] > 0):
        raise UserError(f"sim: px_per_mm must be more than 0, got {opts['px_per_mm']}")
    if "out_of_spec" in opts and not 0.0 <= opts["out_of_spec"] <= 1.0:
        raise UserError(f"sim: out_of_spec is a fraction from 0 to 1, got {opts['out_of_spec']}")
    if opts.get("out_of_spec") and not opts.get("flow"):
        raise UserError("sim: out_of_spec needs the flowing belt (flow=1)")
    if opts.get("flow") and "speed" in opts and not (math.isfinite(opts["speed"]) and opts["speed"] > 0):
        raise UserError(f"sim: a flowing belt needs speed above 0, got {opts['speed']}")
    if "frames" in opts and opts["frames"] < 1:
        raise UserError(f"sim: frames must be at least 1, got {opts['frames']}")
    if opts.get("mix") and (opts.get("flow") or "shape" in opts):
        raise UserError("sim: the products mix (scene=products) has shapes of its own and a looping belt: without "
                        "shape or flow")
    if "shape" in opts and opts["shape"] not in PRODUCT_SHAPES:
        raise UserError(f"sim: unknown shape {opts['shape']!r}; choose one of {', '.join(PRODUCT_SHAPES)}")


def _check_rtsp_address(uri: str) -> None:
    """A host, and a port that is a number from 1 to 65535 where one is given: a typo there is a
    configuration error to report now, not a camera to retry for ever."""
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        raise UserError(f"rtsp source {redact(uri)}: the port must be a number from 1 to 65535") from None
    if not parts.hostname:
        raise UserError(f"rtsp source {redact(uri)} names no host")
    if port == 0:
        raise UserError(f"rtsp source {redact(uri)}: the port must be a number from 1 to 65535")
