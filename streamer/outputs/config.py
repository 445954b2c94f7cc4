"""`stream.outputs:` the plant's protocols (MQTT, OPC UA, Modbus TCP), and each camera's part in them
(`stream.sources[].outputs`). Every output is off by default; docs/plant-*.md describe each one."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

_TOPIC_LEVEL = r"^[A-Za-z0-9_.\-/]{1,128}$"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Credentials(_Section):
    """A user name and its password: in the file, or (better) named by an environment variable. The password is
    a SecretStr: printing the configuration shows stars, and it never reaches a log line."""

    username: Optional[str] = Field(None, min_length=1, max_length=256)
    password: Optional[SecretStr] = Field(None, description="the password itself (prefer password_env)")
    password_env: Optional[str] = Field(None, description="the environment variable that holds the password")

    @model_validator(mode="after")
    def _one_password(self):
        if self.password is not None and self.password_env is not None:
            raise ValueError("give password or password_env, not both")
        if self.username is None and (self.password is not None or self.password_env is not None):
            raise ValueError("a password needs a username")
        return self

    @property
    def given(self) -> bool:
        return self.username is not None

    def secret(self) -> str | None:
        """The password (None without one); KeyError-free: a missing variable is a UserError at start."""
        if self.password is not None:
            return self.password.get_secret_value()
        if self.password_env is None:
            return None
        value = os.environ.get(self.password_env)
        if value is None:
            from streamer.errors import UserError

            raise UserError(f"the environment variable {self.password_env} (a password) is not set")
        return value


class MqttTls(_Section):
    ca_file: Optional[Path] = Field(None, description="CA certificates (PEM) the broker's certificate must chain to; "
                                    "null: the system's")
    cert_file: Optional[Path] = Field(None, description="this client's certificate (PEM), where the broker asks")
    key_file: Optional[Path] = Field(None, description="its private key (PEM)")
    insecure_skip_verify: bool = Field(False, description="do not check the broker's certificate or name (logged "
                                       "as a warning; for a test broker only)")

    @model_validator(mode="after")
    def _pair(self):
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("give both cert_file and key_file (or neither)")
        return self


class MqttConfig(_Section):
    """A client of the plant's MQTT broker."""

    enabled: bool = False
    host: str = Field("127.0.0.1", min_length=1, max_length=253)
    port: int = Field(1883, ge=1, le=65535)
    client_id: str = Field("persense-stream", min_length=1, max_length=128)
    prefix: str = Field("persense", pattern=_TOPIC_LEVEL, description="topics are <prefix>/<camera>/<kind>")
    qos: Literal[0, 1, 2] = 1
    credentials: Credentials = Credentials()
    tls: Optional[MqttTls] = Field(None, description="TLS to the broker (null: plain TCP)")
    queue_size: int = Field(
        10_000, ge=1, le=1_000_000,
        description="messages held while the broker is away or slow (sent on reconnect); beyond it new ones are "
        "dropped and counted")
    results: bool = Field(True, description="publish a summary of each result (count, match quality, totals)")
    result_interval_s: float = Field(0.0, ge=0, le=3600, description="per camera, at most one result summary per "
                                     "this many seconds (0: every result)")
    keepalive_s: int = Field(30, ge=5, le=3600)
    connect_timeout_s: float = Field(5.0, gt=0, le=120, description="at start, how long to wait for the broker's "
                                     "answer before running on without it (degraded, reconnecting)")
    reconnect_max_s: int = Field(30, ge=1, le=3600, description="longest wait between reconnect attempts")


class OpcUaConfig(_Section):
    """An OPC UA server: one folder of variables per camera (docs/plant-opcua.md)."""

    enabled: bool = False
    host: str = Field("127.0.0.1", description="address the server binds")
    port: int = Field(4840, ge=0, le=65535)
    security: Literal["Basic256Sha256", "none"] = Field(
        "Basic256Sha256", description="Basic256Sha256 (sign and encrypt, needs certificate and private_key) or "
        "none (needs allow_anonymous: anyone who reaches the port reads the line's figures)")
    certificate: Optional[Path] = Field(None, description="the server's certificate (DER or PEM)")
    private_key: Optional[Path] = Field(None, description="its private key (PEM)")
    credentials: Credentials = Field(Credentials(), description="the user clients log in as")
    allow_anonymous: bool = Field(False, description="let clients in without a user (logged as a warning)")
    namespace: str = Field("urn:persense:stream", min_length=1, max_length=256)

    @model_validator(mode="after")
    def _secure_or_opted_out(self):
        if not self.enabled:
            return self
        if self.security == "Basic256Sha256" and (self.certificate is None or self.private_key is None):
            raise ValueError("security Basic256Sha256 needs certificate and private_key (docs/plant-opcua.md shows "
                             "how to make them); or security: none with allow_anonymous: true")
        if self.security == "none" and not self.allow_anonymous:
            raise ValueError("security none lets anyone in: it needs allow_anonymous: true")
        if self.security == "none" and self.credentials.given:
            raise ValueError("a password over security none would travel in clear: use Basic256Sha256")
        if not self.allow_anonymous and not self.credentials.given:
            raise ValueError("give credentials (username and password_env) or allow_anonymous: true")
        return self


class ModbusConfig(_Section):
    """A Modbus TCP server: holding registers per camera and a coil per reject station (docs/plant-modbus.md)."""

    enabled: bool = False
    host: str = Field("127.0.0.1", description="address the server binds")
    port: int = Field(5020, ge=0, le=65535, description="502 is Modbus's own (privileged) port")
    allow_remote: bool = Field(False, description="bind beyond loopback: Modbus TCP has no authentication, so this "
                               "is an explicit opt-out (logged as a warning)")
    word_order: Literal["high_first", "low_first"] = Field(
        "high_first", description="32-bit values over two registers: high_first (big-endian words: Siemens, "
        "Ignition's default) or low_first (word-swapped: many Allen-Bradley and Schneider set-ups)")
    registers_per_camera: int = Field(32, ge=24, le=1000, description="camera i's block starts at i times this "
                                      "(unless the camera sets its own modbus_base)")
    max_pending_pulses: int = Field(256, ge=1, le=100_000, description="reject pulses waiting for their due time; "
                                    "beyond it new ones are dropped and counted")


class OutputsConfig(_Section):
    mqtt: MqttConfig = MqttConfig()
    opcua: OpcUaConfig = OpcUaConfig()
    modbus: ModbusConfig = ModbusConfig()

    @property
    def any(self) -> bool:
        return self.mqtt.enabled or self.opcua.enabled or self.modbus.enabled


class CameraOutputs(_Section):
    """One camera's part in the outputs (`stream.sources[].outputs`)."""

    mqtt: bool = Field(True, description="this camera's messages go to MQTT (where it is enabled)")
    opcua: bool = Field(True, description="this camera has a folder in the OPC UA server")
    modbus: bool = Field(True, description="this camera has a register block and a coil in the Modbus server")
    modbus_base: Optional[int] = Field(None, ge=0, le=65000, description="its first holding register; null: "
                                       "camera index x registers_per_camera")
    modbus_coil: Optional[int] = Field(None, ge=0, le=65000, description="the coil pulsed at each reject; null: "
                                       "the camera's index")


def modbus_layout(cameras: list[tuple[str, CameraOutputs]], config: ModbusConfig) -> dict[str, tuple[int, int]]:
    """camera -> (its first holding register, its coil), for the cameras in the Modbus server (in configured
    order); ValueError where two blocks overlap or two cameras share a coil."""
    layout: dict[str, tuple[int, int]] = {}
    for index, (camera, own) in enumerate(cameras):
        if not own.modbus:
            continue
        base = own.modbus_base if own.modbus_base is not None else index * config.registers_per_camera
        coil = own.modbus_coil if own.modbus_coil is not None else index
        layout[camera] = (base, coil)
    taken = sorted((base, camera) for camera, (base, _) in layout.items())
    for (base, camera), (next_base, other) in zip(taken, taken[1:]):
        if next_base < base + config.registers_per_camera:
            raise ValueError(f"modbus: the register blocks of {camera} ({base}) and {other} ({next_base}) overlap "
                             f"({config.registers_per_camera} registers each)")
    coils = [coil for _, coil in layout.values()]
    if len(set(coils)) != len(coils):
        raise ValueError(f"modbus: two cameras share a coil ({sorted(coils)})")
    return layout
