"""`persense run`: segment camera streams and publish the results (ZeroMQ), with control and metrics.

With no arguments it runs the embedded default: the conveyor simulator, the embedded CPU engines and
the simulator's own support set.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from functools import partial
from pathlib import Path

from streamer.cli.common import add_config_argument
from streamer.cli.stopping import stop_on_signals
from streamer.config import Config, load_config
from streamer.stream.config import SourceConfig

log = logging.getLogger("persense.run")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "run",
        help="segment camera streams and publish the results over ZeroMQ",
        description="Segment every frame of one or more cameras and publish counts and masks over ZeroMQ, "
        "with a control socket and Prometheus metrics. Without arguments: the built-in conveyor simulator "
        "with the embedded CPU engines.",
    )
    add_config_argument(p, help="configuration file (flags override it)")
    p.add_argument("--source", metavar="URI",
                   help="video file, image folder, rtsp://..., v4l2:N, gige:NAME or sim:?objects=60&fps=30")
    p.add_argument("--camera-id", metavar="NAME", help="camera name in topics and metrics (default cam0)")
    p.add_argument("--support", type=Path, metavar="IMAGE", help="support image: one example of the product")
    p.add_argument("--support-mask", type=Path, metavar="MASK", help="the support object's mask (non-zero pixels)")
    p.add_argument("--publish", metavar="ENDPOINT", help="ZeroMQ PUB endpoint to bind (default tcp://127.0.0.1:5556)")
    p.add_argument("--control", metavar="ENDPOINT",
                   help="ZeroMQ REP control endpoint to bind (default tcp://127.0.0.1:5557)")
    p.add_argument("--metrics-port", type=int, metavar="PORT",
                   help="HTTP port of the console (/), /metrics, /healthz, /readyz (default 9108, 0 = any)")
    p.add_argument("--metrics-host", metavar="HOST",
                   help="address the HTTP port binds (default 127.0.0.1; beyond loopback the console needs a token)")
    p.add_argument("--count-line", metavar="X0,Y0,X1,Y1",
                   help="count items crossing this line (fractions of the frame; 0.5,0,0.5,1 is the vertical middle, "
                   "forward left to right); tracks items and publishes persense/<camera>/tally (replaces the "
                   "config's stream.tally.lines)")
    p.add_argument("--mqtt", metavar="HOST[:PORT]",
                   help="publish results, tallies and rejects to this MQTT broker (stream.outputs.mqtt; default port "
                   "1883; needs the mqtt extra)")
    p.add_argument("--opcua-port", type=int, metavar="PORT",
                   help="serve OPC UA on this port (stream.outputs.opcua gives its certificate and user; needs the "
                   "opcua extra)")
    p.add_argument("--modbus-port", type=int, metavar="PORT",
                   help="serve Modbus TCP on this port (stream.outputs.modbus; needs the modbus extra)")
    p.add_argument("--max-frames", type=int, metavar="N", help="stop after N published results")
    p.add_argument("--workers", type=int, metavar="N",
                   help="frames segmented at once, results in capture order (stream.workers; default: the cores)")
    p.add_argument("--status-interval", type=float, default=10.0, metavar="SECONDS",
                   help="print a status line per camera (count, frames/s, latency, match quality, items passed) "
                   "every SECONDS (default %(default)g; 0: never; -q silences it too)")
    p.add_argument("--loop", action="store_true", help="replay file sources from the start")
    p.add_argument("--every-frame", action="store_true",
                   help="files and folders: process every frame as fast as possible (default: play files at their "
                   "own frame rate, newest frame wins, like a camera); live cameras always keep the newest frame")
    p.add_argument("--overlay", action="store_true", help="publish a JPEG overlay part with each result")
    p.add_argument("--label-map", action="store_true", help="publish a 16-bit PNG label map part with each result")
    p.add_argument("--cache-dir", type=Path, metavar="DIR", help="support prototype cache (default ~/.cache/persense)")
    p.add_argument("--server-key", type=Path, metavar="FILE",
                   help="CURVE: the server's NAME.key_secret ('persense keys'); control and results then need a "
                   "client key from --authorized-keys")
    p.add_argument("--authorized-keys", type=Path, metavar="DIR", help="CURVE: folder of the client public keys let in")
    p.add_argument("--insecure", action="store_true",
                   help="allow binding control or publish beyond loopback without CURVE (logged as a warning)")
    p.set_defaults(func=run)


def apply_flags(config: Config, args: argparse.Namespace) -> Config:
    """Flags override the configuration file; the result is validated like the file."""
    from pydantic import ValidationError

    from streamer.errors import UserError

    raw = config.model_dump()
    stream = raw["stream"]
    if args.source:
        try:
            stream["sources"] = [SourceConfig(uri=args.source).model_dump()]
        except ValidationError as exc:  # a bad option in the URI (sim:?scene=shape): one line, as in a file
            raise UserError(f"--source: {exc.errors()[0]['msg'].removeprefix('Value error, ')}") from None
    if args.camera_id:
        stream["sources"][0]["camera_id"] = args.camera_id
    for source in stream["sources"]:
        source["loop"] = source["loop"] or args.loop
        source["every_frame"] = source["every_frame"] or args.every_frame
    # Field by field, as segment does: a flag replaces only its own half of the config's support set.
    raw["support"]["image"] = args.support or raw["support"]["image"]
    raw["support"]["mask"] = args.support_mask or raw["support"]["mask"]
    if args.publish:
        stream["publish"]["endpoint"] = args.publish
    if args.control:
        stream["control"]["endpoint"] = args.control
    if args.metrics_port is not None:
        stream["metrics"]["port"] = args.metrics_port
    if args.metrics_host:
        stream["metrics"]["host"] = args.metrics_host
    if args.max_frames is not None:
        stream["max_frames"] = args.max_frames
    if getattr(args, "workers", None) is not None:
        stream["workers"] = args.workers
    outputs = stream["outputs"]
    if args.mqtt:
        host, port = _host_port(args.mqtt, outputs["mqtt"]["port"])
        outputs["mqtt"].update(enabled=True, host=host, port=port)
    if args.opcua_port is not None:
        outputs["opcua"].update(enabled=True, port=args.opcua_port)
    if args.modbus_port is not None:
        outputs["modbus"].update(enabled=True, port=args.modbus_port)
    if args.count_line:
        stream["tally"]["lines"] = [{"points": _four_numbers(args.count_line), "normalized": True}]
    stream["publish"]["overlay_jpeg"] = stream["publish"]["overlay_jpeg"] or args.overlay
    stream["publish"]["label_map_png"] = stream["publish"]["label_map_png"] or args.label_map
    if args.cache_dir:
        stream["cache_dir"] = args.cache_dir
    if args.server_key:
        stream["security"]["server_key"] = args.server_key
    if args.authorized_keys:
        stream["security"]["authorized_keys"] = args.authorized_keys
    stream["allow_insecure"] = stream["allow_insecure"] or args.insecure
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UserError(f"{where}: {first['msg']}") from None


def _host_port(text: str, default_port: int) -> tuple[str, int]:
    from streamer.errors import UserError

    host, colon, port = text.rpartition(":")
    if not colon or "]" in port:
        return text, default_port
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"--mqtt needs HOST or HOST:PORT (a port 1-65535), got {text!r}")
    return host.strip("[]"), int(port)


def _four_numbers(text: str) -> list[float]:
    from streamer.errors import UserError

    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 4:
        raise UserError(f"--count-line needs four numbers x0,y0,x1,y1 (fractions of the frame), got {text!r}")
    return values


def check_sources(sources: list[SourceConfig], tally=None) -> None:
    """UserError for a bad URI or option now, before the engines load (open_source opens nothing); and for a reject
    station of `tally` (stream.tally) outside a camera's frame where its size is known now (a simulator's, or the
    one the camera's calibration was made for)."""
    from streamer.errors import UserError
    from streamer.sources import open_source
    from streamer.stream.rejects import check_stations

    for source in sources:
        try:
            # loop is left out: it only changes behaviour, and the camera's own open_source warns about it.
            opened = open_source(source.uri, source.camera_id, **source.options)
        except UserError as exc:
            raise UserError(f"camera {source.camera_id}: {exc}") from None
        size = getattr(opened, "frame_size", None)
        if tally is not None and tally.rejects:
            try:
                check_stations(tally, source.camera_id, size)
            except ValueError as exc:
                raise UserError(f"camera {source.camera_id}: {exc}") from None


def _announce_http(processor) -> None:
    if processor.http:
        base = processor.http.base_url
        log.info("metrics: %s/metrics, health: %s/healthz, readiness: %s/readyz", base, base, base)
    console = processor.console_http or processor.http
    if console and processor.stream.console.enabled:
        needs = " (it needs the token)" if processor.http_token else ""
        log.info("console: open %s/ in a browser%s", console.base_url, needs)
    if processor.http_token_generated:
        # Shown once, on the terminal only: a credential never goes to the log.
        print(f"console token (generated; set stream.console.token to choose one): open "
              f"{(console or processor.http).base_url}/?token={processor.http_token}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    # First, before anything slow (imports, models): a signal asks for a clean stop (exit 0) from here on.
    # SIGHUP too: a closed terminal or ssh session, or a supervisor's reload, must not lose the queued results.
    with stop_on_signals(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as stop:
        log.debug("SIGTERM, SIGHUP and SIGINT now stop the run cleanly")
        return _run(args, stop)


def _run(args: argparse.Namespace, stop: threading.Event) -> int:
    from streamer.cli.run_status import StatusLines
    from streamer.engine_factory import build_engines
    from streamer.errors import UserError
    from streamer.sources.redact import redact
    from streamer.stream.processor import StreamProcessor
    from streamer.stream.security import check_exposure
    from streamer.stream.product_examples import camera_products
    from streamer.stream.support import camera_supports, initial_support

    if args.max_frames is not None and args.max_frames < 1:
        raise UserError("--max-frames must be at least 1")
    if not args.status_interval >= 0:  # `not >=` also refuses NaN
        raise UserError(f"--status-interval must be 0 (never) or more seconds, got {args.status_interval}")
    config = apply_flags(load_config(args.config), args)
    stream = config.stream
    check_sources(stream.sources, stream.tally)
    # Before the engines load: an exposed socket without CURVE is refused at once (the processor checks again).
    check_exposure({"publish": None if stream.publish.connect else stream.publish.endpoint,
                    "control": stream.control.endpoint}, stream.security.curve,
                   stream.allow_insecure, warn=False)
    own_supports = camera_supports(stream.sources)
    products = camera_products(stream.sources, config.support)
    own_supports.update({camera: p[0].support for camera, p in products.items() if p[0].support is not None})
    if len(own_supports) == len(stream.sources) and config.support.image is None:
        support = own_supports[stream.sources[0].camera_id]  # every camera shows its own product
    else:
        support = initial_support(config.support.image, config.support.mask, stream.sources)
    if stop.is_set():
        return 0
    processor = None
    lines = None
    try:
        t0 = time.perf_counter()
        engines = build_engines(config.engines)
        log.info("engines %s ready in %.1f s", engines.name, time.perf_counter() - t0)
        if stop.is_set():
            return 0
        processor = StreamProcessor(config, engines, support, camera_supports=own_supports, camera_products=products,
                                    engine_factory=partial(build_engines, config.engines))
        processor.start()
        for source in stream.sources:
            log.info("camera %s: %s", source.camera_id, redact(source.uri))
        log.info("results: subscribe to %s (topics persense/<camera>/result and /status), e.g. "
                 "'persense subscribe --endpoint %s'", processor.publisher.endpoint, processor.publisher.endpoint)
        if processor.control:
            log.info("control: %s (JSON requests status, pause, resume, set_support [camera])",
                     processor.control.endpoint)
        if processor.http or processor.console_http:
            _announce_http(processor)
        lines = StatusLines(processor, args.status_interval)
        lines.start()
        why = processor.wait(stop)
        log.info("stopping (%s)", why)
    finally:
        if lines is not None:
            lines.stop()
        if processor is not None:
            processor.stop()
    log.info("published %d result(s)", processor.publisher.sent if processor.publisher else 0)
    return 0
