"""The fleet file (`persense fleet FLEET.yaml`): the cluster, the fleet's endpoints, engine sets and cameras.

    fleet: {address: null, publish: tcp://127.0.0.1:5560, ingest: tcp://127.0.0.1:5561, control: ..., file_sd: ...}
    engine_sets: {default: {segmenter: embedded}}
    defaults: {...}            # a whole `persense run` configuration every camera starts from
    cameras:
      - {camera_id: line1, uri: "sim:?seed=1", engines: default, resources: {num_cpus: 1, num_gpus: 0.25},
         support: {image: a.png, mask: a_mask.png}, gate: {kind: roi, roi: [0, 0, 0.5, 1]}}
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from streamer.config import Config, EnginesConfig, read_yaml_mapping
from streamer.errors import UserError
from streamer.stream.config import SourceConfig
from streamer.stream.endpoints import check_endpoint

MAX_CAMERAS = 1024


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Resources(_Section):
    """What one camera's worker asks of Ray; Ray places it on a node that has it."""

    num_cpus: float = Field(1.0, ge=0, le=1024, description="CPUs (Ray's logical units)")
    num_gpus: float = Field(0.0, ge=0, le=64, description="GPUs; fractions share one, e.g. 0.25 is a quarter")

    @field_validator("num_gpus")
    @classmethod
    def _whole_beyond_one(cls, value: float) -> float:
        # Ray shares a GPU in fractions, but more than one must be whole GPUs.
        if value > 1 and value != int(value):
            raise ValueError(f"num_gpus above 1 must be a whole number, got {value:g}")
        return value


class FleetCamera(SourceConfig):
    """A camera: its source (every field of stream.sources[i], its own product and gate included), its engines
    and its resources."""

    camera_id: str = Field(description="unique in the fleet; names the topics persense/<camera_id>/...")
    engines: str = Field("default", description="a name in engine_sets")
    resources: Resources = Resources()

    def source(self) -> SourceConfig:
        """The stream processor's view: the source without the fleet's fields (and without the support's paths,
        which the fleet reads and ships to the worker, wherever it runs)."""
        return SourceConfig(**self.model_dump(exclude={"engines", "resources", "support"}))


class FleetSecurity(_Section):
    """CURVE on the fleet's endpoints (publish, ingest, control); all three files or none."""

    server_key: Optional[Path] = Field(None, description="the fleet's NAME.key_secret")
    authorized_keys: Optional[Path] = Field(None, description="folder of the client public keys let in; the "
                                            "workers' key must be among them")
    worker_key: Optional[Path] = Field(None, description="the workers' NAME.key_secret: their publishers are CURVE "
                                       "clients of the forwarder's ingest endpoint")

    @model_validator(mode="after")
    def _all_or_none(self):
        given = [self.server_key is not None, self.authorized_keys is not None, self.worker_key is not None]
        if any(given) and not all(given):
            raise ValueError("give server_key, authorized_keys and worker_key (or none of them)")
        return self

    @property
    def curve(self) -> bool:
        return self.server_key is not None


class LocalCluster(_Section):
    """The Ray started on this machine when no cluster address is given."""

    num_cpus: Optional[int] = Field(None, ge=1, le=4096, description="null: Ray counts this machine's cores")
    num_gpus: Optional[int] = Field(None, ge=0, le=64)
    object_store_mb: int = Field(200, ge=80, le=1_000_000, description="Ray's shared-memory object store")


class FleetSettings(_Section):
    address: Optional[str] = Field(None, description="Ray cluster address HOST:PORT; null: start a local Ray")
    publish: str = Field("tcp://127.0.0.1:5560", description="XPUB the forwarder binds: subscribers connect here")
    ingest: str = Field("tcp://127.0.0.1:5561", description="XSUB the forwarder binds: the workers' publishers "
                        "connect here (every node must reach it)")
    ingest_host: Optional[str] = Field(None, description="the address workers connect to when ingest binds a "
                                       "wildcard (0.0.0.0); null: this machine's address as Ray sees it")
    control: str = Field("tcp://127.0.0.1:5562", description="ROUTER of fleet control requests")
    file_sd: Optional[Path] = Field(None, description="Prometheus file_sd_configs JSON of the workers' /metrics")
    metrics_host: str = Field("127.0.0.1", description="address the workers' /metrics bind on their nodes")
    max_restarts: int = Field(-1, ge=-1, le=1_000_000, description="restarts of a failed worker (-1: for ever)")
    poll_s: float = Field(1.0, gt=0, le=60, description="how often the fleet asks every worker for its status")
    hwm: int = Field(1000, ge=1, le=1_000_000, description="the forwarder's high-water marks (messages)")
    security: FleetSecurity = FleetSecurity()
    allow_insecure: bool = Field(False, description="bind fleet endpoints beyond loopback without CURVE (logged)")
    local: LocalCluster = LocalCluster()

    @field_validator("publish", "ingest", "control")
    @classmethod
    def _valid_endpoint(cls, value: str) -> str:
        return check_endpoint(value)


class FleetConfig(_Section):
    fleet: FleetSettings = FleetSettings()
    engine_sets: dict[str, EnginesConfig] = Field(default_factory=lambda: {"default": EnginesConfig()})
    defaults: Config = Field(default_factory=Config, description="what every camera's processor starts from")
    cameras: list[FleetCamera] = Field(default_factory=list, max_length=MAX_CAMERAS)

    @model_validator(mode="after")
    def _consistent(self):
        seen = set()
        for camera in self.cameras:
            if camera.camera_id in seen:
                raise ValueError(f"duplicate camera id {camera.camera_id!r}")
            seen.add(camera.camera_id)
            check_engine_set(self, camera)
        return self


def check_engine_set(config: FleetConfig, camera: FleetCamera) -> None:
    if camera.engines not in config.engine_sets:
        raise ValueError(f"camera {camera.camera_id}: unknown engine set {camera.engines!r}; "
                         f"engine_sets: {', '.join(sorted(config.engine_sets)) or 'none'}")


def _one_line(exc: ValidationError, where: str) -> str:
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    return f"{where}: {loc + ': ' if loc else ''}{message}"


def parse_camera(raw: object) -> FleetCamera:
    """A camera as a control request gives it (a JSON object) -> FleetCamera; UserError with one line."""
    try:
        return FleetCamera.model_validate(raw)
    except ValidationError as exc:
        raise UserError(_one_line(exc, "camera")) from None


def load_fleet(path: Path | str) -> FleetConfig:
    """Read a fleet file; UserError with one line naming the file and the first problem."""
    path = Path(path)
    raw = read_yaml_mapping(path, "fleet")
    try:
        return FleetConfig.model_validate(raw)
    except ValidationError as exc:
        raise UserError(_one_line(exc, f"fleet file {path}")) from None
