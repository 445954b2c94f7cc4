"""The stream processor's settings: `stream:` in the YAML config. Every field has a safe default."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional
from urllib.parse import parse_qsl

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from streamer.archive.config import ArchiveConfig
from streamer.imageio import DEFAULT_MAX_PIXELS
from streamer.outputs.config import CameraOutputs, OutputsConfig, modbus_layout
from streamer.product_config import GateConfig, ProductConfig, SupportConfig, check_products
from streamer.simulator.shapes import ProductShape, SceneName
from streamer.stream.endpoints import check_endpoint
from streamer.stream.tally_config import TallyConfig

DEFAULT_SOURCE = "sim:?objects=60&fps=30"
MAX_WORKERS = 32  # stream.workers' bound: each worker holds its own copy of the engines
_CAMERA_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SimulatorOptions(_Section):
    """The simulator's (`sim:` sources') options that take one of a fixed set of values; checked when the
    configuration is read, whether they are in `options:` or in the URI's query (sim:?shape=rod)."""

    shape: ProductShape = Field(
        "ellipse", description="the products' shape: ellipse (the original round products), rod (dowels, pins: "
        "2.5-6 times as long as wide, any orientation), bracket (L), tee, star, washer (the hole is background), "
        "or mixed (rods, brackets, tees and stars)"
    )
    scene: SceneName = Field(
        "default", description="a named scene: default, or shapes (50 elongated and angular products, 8 "
        "rectangles of another kind); options given beside it win"
    )


class SourceConfig(_Section):
    """One camera or file; each gets its own supervisor."""

    uri: str = Field(DEFAULT_SOURCE, description="file, folder, rtsp://, v4l2:N, gige:NAME or sim:?...")
    camera_id: Optional[str] = Field(None, description="names the camera in topics and metrics; default cam0, cam1...")
    every_frame: bool = Field(
        False, description="files and folders: process every frame instead of the newest one (live cameras always "
        "keep the newest)"
    )
    loop: bool = Field(False, description="file sources: replay from the start at the end")
    options: dict = Field(default_factory=dict, description="extra keyword options for the source (e.g. rtsp_transport)")
    support: Optional[SupportConfig] = Field(
        None, description="this camera's own product (support image and mask); null: the configuration's support"
    )
    products: Optional[list[ProductConfig]] = Field(
        None, max_length=64, description="several products on this camera, each with its name and support (the first "
        "is the default one); null: one product (`support`, or the configuration's). At most stream.max_products")
    gate: Optional[GateConfig] = Field(None, description="this camera's own gate or region of interest; null: the "
                                       "configuration's gate")
    outputs: CameraOutputs = Field(default_factory=CameraOutputs, description="this camera's part in the plant's "
                                   "outputs (stream.outputs): which ones carry it, its Modbus registers and coil")

    @model_validator(mode="after")
    def _simulator_options(self):
        text = self.uri.strip()
        if text.lower() != "sim" and not text.lower().startswith("sim:"):
            return self
        given = dict(parse_qsl(text.split("?", 1)[1])) if "?" in text else {}
        given.update(self.options)
        typed = {key: given[key] for key in SimulatorOptions.model_fields if key in given}
        try:
            SimulatorOptions.model_validate(typed)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise ValueError(f"sim option {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
        return self

    @model_validator(mode="after")
    def _products_named_once(self):
        check_products(self.products, self.support is not None)
        return self

    @field_validator("camera_id")
    @classmethod
    def _valid_camera(cls, value):
        # The id becomes part of a ZeroMQ topic and a Prometheus label: keep it short and plain.
        if value is not None and not _CAMERA_ID.match(value):
            raise ValueError("camera_id must be 1-64 characters of letters, digits, '_', '.', '-'")
        return value


class SupervisorConfig(_Section):
    """Reconnect and stall detection timings of every camera's supervisor (seconds)."""

    read_timeout: float = Field(1.0, gt=0, le=60)
    stall_timeout: float = Field(5.0, gt=0, le=3600, description="no frame for this long: the source is stalled")
    frozen_after: int = Field(50, ge=0, le=100_000, description="this many identical frames in a row: frozen (0 = off)")
    backoff_initial: float = Field(0.5, gt=0, le=3600)
    backoff_max: float = Field(30.0, gt=0, le=3600)
    jitter: float = Field(0.2, ge=0, le=1, description="random fraction added to or taken from each backoff")

    @model_validator(mode="after")
    def _backoff_order(self):
        if self.backoff_max < self.backoff_initial:
            raise ValueError(f"backoff_max ({self.backoff_max}) must be at least backoff_initial "
                             f"({self.backoff_initial})")
        return self


class PublishConfig(_Section):
    endpoint: str = Field("tcp://127.0.0.1:5556", description="ZeroMQ PUB endpoint the processor binds")
    connect: bool = Field(
        False, description="connect to `endpoint` (a fleet's forwarder, docs/fleet.md) instead of binding it"
    )
    send_hwm: int = Field(100, ge=1, le=100_000, description="ZeroMQ send high-water mark (messages per subscriber)")
    queue_size: int = Field(
        8, ge=1, le=10_000, description="results waiting for the publisher thread; more are dropped"
    )
    masks: bool = Field(True, description="include RLE masks in the header (false: boxes and counts only)")
    overlay_jpeg: bool = Field(False, description="add a JPEG overlay image part")
    jpeg_quality: int = Field(80, ge=1, le=100)
    label_map_png: bool = Field(False, description="add a 16-bit PNG label map part (0 background, i+1 instance i)")
    heartbeat_s: float = Field(1.0, ge=0.01, le=3600, description="interval of status heartbeats per camera")

    @field_validator("endpoint")
    @classmethod
    def _valid_endpoint(cls, value: str) -> str:
        return check_endpoint(value)


class ControlConfig(_Section):
    endpoint: Optional[str] = Field("tcp://127.0.0.1:5557", description="ZeroMQ REP endpoint; null disables it")
    max_request_bytes: int = Field(
        32 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024, description="larger requests get an error reply"
    )
    timeout_s: float = Field(
        120.0, gt=0, le=3600, description="how long a set_support request may wait for the pipeline"
    )
    max_image_pixels: int = Field(
        DEFAULT_MAX_PIXELS, ge=1, le=500_000_000,
        description="set_support images with more pixels are refused from their header, before decoding",
    )
    max_image_bytes: int = Field(
        3 * DEFAULT_MAX_PIXELS, ge=1024, le=4 * 1024**3,
        description="images from outside (set_support, uploads) whose decoded array (width x height x channels x "
        "bytes per sample, read from the header) is larger are refused before decoding: deep 16-bit and float "
        "images cost 2-8 times their pixels",
    )

    @field_validator("endpoint")
    @classmethod
    def _valid_endpoint(cls, value: str | None) -> str | None:
        return value if value is None else check_endpoint(value)


class MetricsConfig(_Section):
    host: str = Field("127.0.0.1",
                      description="address of the HTTP server for the console, /metrics, /healthz, /readyz")
    port: Optional[int] = Field(9108, ge=0, le=65535, description="0 picks a free port; null disables it")


class ConsoleConfig(_Section):
    """The operator console in the browser, served on the metrics port (see streamer.console)."""

    enabled: bool = Field(True, description="serve the console at / (false: probes and metrics only)")
    port: Optional[int] = Field(None, ge=0, le=65535,
                                description="a port of its own (0: any free one); null: the metrics port")
    host: Optional[str] = Field(None, description="the address of its own port; null: the metrics host")
    token: Optional[str] = Field(
        None, min_length=16, max_length=256,
        description="token the console and its API need; null: none on 127.0.0.1, and beyond loopback one is "
        "generated and printed once at start",
    )
    tokens: dict[str, str] = Field(
        default_factory=dict, max_length=64,
        description="named tokens (name: token, each at least 16 characters): each opens the console like `token`, "
        "and the audit trail names who changed something by its name (the `token` itself is named 'console')")
    metrics_need_token: bool = Field(False, description="whether /metrics needs the token too (Prometheus often "
                                     "scrapes without)")
    max_fps: float = Field(10.0, gt=0, le=30, description="frames per second of the live view, at most")
    max_upload_bytes: int = Field(16 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024,
                                  description="largest support upload (image and mask together)")
    upload_wait_s: float = Field(30.0, gt=0, le=600,
                                 description="an upload waits this long for the one being decoded before it, then "
                                 "is refused (busy): one upload is decoded at a time")
    support_history_bytes: int = Field(
        32 * 1024 * 1024, ge=0, le=4 * 1024**3,
        description="per camera, the packed supports kept for Undo (lossless PNG + mask bits); the oldest are "
        "forgotten beyond it, the one in force is always kept")
    max_viewers: int = Field(4, ge=0, le=256, description="live views (live.mjpg) open at once; the next gets 503")
    # The HTTP port (console, metrics and probes alike): every connection is bounded in time.
    max_connections: int = Field(
        256, ge=8, le=10_000,
        description="open HTTP connections; beyond, the oldest one that has not sent a complete request is closed "
        "for the new one (probes stay answerable under a flood)")
    head_timeout_s: float = Field(10.0, gt=0, le=600,
                                  description="a request's line and headers must arrive within this")
    request_timeout_s: float = Field(30.0, gt=0, le=3600,
                                     description="a whole request (head and body) must arrive within this")
    keep_alive_s: float = Field(5.0, gt=0, le=600, description="an idle connection is closed after this")


    @field_validator("tokens")
    @classmethod
    def _valid_tokens(cls, value: dict[str, str]) -> dict[str, str]:
        for name, token in value.items():
            if not _CAMERA_ID.match(name):
                raise ValueError("token names must be 1-64 characters of letters, digits, '_', '.', '-'")
            if not 16 <= len(token) <= 256:
                raise ValueError(f"token {name!r} must be 16-256 characters")
        if len(set(value.values())) != len(value):
            raise ValueError("two named tokens are the same")
        return value


class SecurityConfig(_Section):
    """CURVE on the control and publish sockets (docs/security.md); both keys or neither."""

    server_key: Optional[Path] = Field(None, description="the server's NAME.key_secret file (persense keys)")
    authorized_keys: Optional[Path] = Field(None, description="folder of the client public keys (*.key) let in")

    @model_validator(mode="after")
    def _both_or_neither(self):
        if (self.server_key is None) != (self.authorized_keys is None):
            raise ValueError("give both server_key and authorized_keys (or neither)")
        return self

    @property
    def curve(self) -> bool:
        return self.server_key is not None


class StreamConfig(_Section):
    sources: list[SourceConfig] = Field(default_factory=lambda: [SourceConfig()], max_length=64)
    supervisor: SupervisorConfig = SupervisorConfig()
    publish: PublishConfig = PublishConfig()
    control: ControlConfig = ControlConfig()
    metrics: MetricsConfig = MetricsConfig()
    console: ConsoleConfig = ConsoleConfig()
    security: SecurityConfig = SecurityConfig()
    tally: TallyConfig = Field(default_factory=TallyConfig, description="tracking, counting lines, item specs")
    archive: ArchiveConfig = Field(default_factory=ArchiveConfig,
                                   description="frames and results kept on disk (off by default; docs/archive.md)")
    outputs: OutputsConfig = Field(default_factory=OutputsConfig, description="the plant's protocols: MQTT, OPC UA, "
                                   "Modbus TCP (docs/plant-*.md)")
    allow_insecure: bool = Field(
        False, description="bind control or publish beyond loopback without CURVE (logged as a warning)"
    )
    cache_dir: Optional[Path] = Field(None, description="support prototype cache; default ~/.cache/persense")
    max_frames: Optional[int] = Field(None, ge=1, le=10**12, description="stop after this many published results")
    max_products: int = Field(8, ge=1, le=64, description="products one camera may count (sources[i].products, and "
                              "those added while running); each costs about a frame's work beyond the encoder "
                              "(docs/products.md)")
    product_threads: Optional[int] = Field(
        None, ge=1, le=64,
        description="how many of a camera's products segment a frame at once, on threads of the stream's process "
        "(the default CPU engines; results identical to one after another); they share that process's cores with "
        "OpenCV's pool: null (default): the cores this process may run on, at most the camera's products; 1: in "
        "turn (docs/products.md, Cost per extra product)",
    )
    encode_ahead: Optional[bool] = Field(
        None,
        description="encode the next frame on its own thread while the current one is segmented, so that a frame "
        "costs max(encoder, rest) instead of their sum; null (default): on where the encoder runs on a GPU",
    )
    workers: Optional[int] = Field(
        None, ge=1, le=MAX_WORKERS,
        description="frames segmented at once, each by its own copy of the pipeline in its own process; results are "
        "published in capture order (docs/performance.md, Workers); null (default): the machine's cores (at most "
        f"{MAX_WORKERS}) where the encoder runs on the CPU, 1 where it runs on a GPU",
    )
    batch_frames: int = Field(
        1, ge=1, le=64, description="with one worker: frames (of several cameras) encoded in one call where the "
        "encoder takes batches (SAM exported with --encoder-batch); 1: one frame per call",
    )
    batch_wait_ms: float = Field(
        5.0, ge=0.0, le=1000.0, description="how long a batch's first frame waits for frames of the other cameras "
        "(the latency a batch may add)",
    )
    worker_threads: bool = Field(
        False, description="run the workers as threads of this process instead of processes: for engines that "
        "release Python's lock while they compute (the default embedded engines do not; docs/performance.md)",
    )
    worker_opencv_threads: Optional[int] = Field(
        None, ge=1, le=64,
        description="OpenCV's threads in each worker process; null (default): the machine's cores shared out among "
        "the workers (at least 1 each), so that N workers do not run N times the cores' threads",
    )

    @model_validator(mode="after")
    def _name_cameras(self):
        if not self.sources:
            raise ValueError("stream.sources must list at least one source")
        for i, source in enumerate(self.sources):
            if source.camera_id is None:
                source.camera_id = f"cam{i}"
        ids = [s.camera_id for s in self.sources]
        if len(set(ids)) != len(ids):
            raise ValueError(f"camera ids must be unique, got {ids}")
        for source in self.sources:
            try:
                check_products(source.products, False, self.max_products)
            except ValueError as exc:
                raise ValueError(f"camera {source.camera_id}: {exc}") from None
        if self.outputs.modbus.enabled:
            modbus_layout([(s.camera_id, s.outputs) for s in self.sources], self.outputs.modbus)
        return self

    def resolved_cache_dir(self) -> Path:
        if self.cache_dir is not None:
            return Path(self.cache_dir).expanduser()
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
        return Path(base) / "persense"
