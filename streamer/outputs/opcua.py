"""The OPC UA output (asyncua): a server with a folder of variables per camera (docs/plant-opcua.md).

Address space, in the namespace `namespace` (default urn:persense:stream), node ids `ns=<i>;s=<camera>.<name>`:
Objects/PerSense/<camera>/{Count, PassedTotal, OutOfSpecTotal, MatchQuality, SourceState, Results, RejectsTotal,
MissedRejectsTotal, LastUpdate, LastReject/{TrackId, Station, DueTime, DueMonotonic, PulseMs, Missed, Reasons}}.
Every variable is read-only to clients.

Security: Basic256Sha256 (sign and encrypt) with the server's certificate and key, clients logging in with
the configured user; anonymous clients (and security none) only where `allow_anonymous` says so, which is
logged as a warning. The server binds 127.0.0.1 unless told otherwise.

The publisher's thread folds each message into the camera's figures (streamer.outputs.serving.FiguresBoard);
the server's own loop copies changed figures into the variables every UPDATE_S, so a slow client never holds
up the line, and values are at most UPDATE_S older than the messages.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import json
import logging

from asyncua import Server, ua
from asyncua.crypto.permission_rules import User, UserRole

from streamer.console.auth import is_loopback
from streamer.errors import UserError, first_line
from streamer.outputs.config import OpcUaConfig
from streamer.outputs.figures import CameraFigures
from streamer.outputs.serving import FiguresBoard, LoopThread, check_port_free

log = logging.getLogger(__name__)

APPLICATION_URI = "urn:persense:stream:server"  # a server certificate's subjectAltName URI should say this
UPDATE_S = 0.05  # how often changed figures reach the variables: 20 Hz, above any frame rate a client samples at
VARIABLES = (
    ("Count", ua.VariantType.UInt32), ("PassedTotal", ua.VariantType.UInt32),
    ("OutOfSpecTotal", ua.VariantType.UInt32), ("MatchQuality", ua.VariantType.Double),
    ("SourceState", ua.VariantType.String), ("Results", ua.VariantType.UInt32),
    ("RejectsTotal", ua.VariantType.UInt32), ("MissedRejectsTotal", ua.VariantType.UInt32),
    ("LastUpdate", ua.VariantType.DateTime),
)
REJECT_VARIABLES = (
    ("TrackId", ua.VariantType.UInt32), ("Station", ua.VariantType.String), ("DueTime", ua.VariantType.DateTime),
    ("DueMonotonic", ua.VariantType.Double), ("PulseMs", ua.VariantType.UInt32), ("Missed", ua.VariantType.Boolean),
    ("Reasons", ua.VariantType.String),
)
_U32 = 1 << 32  # UInt32 counters wrap like a PLC's
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def variable_values(figures: CameraFigures) -> dict[str, object]:
    """One camera's figures -> variable name (LastReject's prefixed `LastReject.`) -> value."""
    values = {
        "Count": figures.count % _U32, "PassedTotal": figures.passed_total % _U32,
        "OutOfSpecTotal": figures.out_of_spec_total % _U32, "MatchQuality": figures.match_quality,
        "SourceState": figures.source_state, "Results": figures.results % _U32,
        "RejectsTotal": figures.rejects_total % _U32, "MissedRejectsTotal": figures.missed_rejects_total % _U32,
        "LastUpdate": _datetime(figures.updated_wall),
    }
    reject = figures.last_reject
    if reject is not None:
        values.update({
            "LastReject.TrackId": reject.track_id % _U32, "LastReject.Station": reject.station,
            "LastReject.DueTime": _datetime(reject.due_wall), "LastReject.DueMonotonic": reject.due_mono,
            "LastReject.PulseMs": reject.pulse_ms, "LastReject.Missed": reject.missed,
            "LastReject.Reasons": json.dumps(list(reject.reasons), separators=(",", ":")),
        })
    return values


def _datetime(unix_s: float) -> dt.datetime:
    return _EPOCH + dt.timedelta(seconds=max(unix_s, 0.0))


class _Users:
    """asyncua's user manager: the configured user (compared in constant time); anonymous only when allowed."""

    def __init__(self, username: str | None, password: str | None, allow_anonymous: bool):
        self._username, self._password, self._anonymous = username, password, allow_anonymous

    def get_user(self, iserver, username=None, password=None, certificate=None):
        if username is None:
            return User(role=UserRole.User, name="anonymous") if self._anonymous else None
        if self._username is None or self._password is None:
            return None
        same_user = hmac.compare_digest(str(username).encode(), self._username.encode())
        same_password = hmac.compare_digest(str(password or "").encode(), self._password.encode())
        return User(role=UserRole.User, name=self._username) if same_user and same_password else None


class OpcUaOutput:
    """Args: config: `stream.outputs.opcua`; cameras: those with a folder; metrics: StreamMetrics."""

    name = "opcua"

    def __init__(self, config: OpcUaConfig, cameras: list[str], metrics):
        self.config, self.cameras, self.metrics = config, list(cameras), metrics
        metrics.output_series(self.name)
        self.board = FiguresBoard(self.cameras, lambda: metrics.output_dropped.labels(self.name, "unreadable").inc())
        self._loop = LoopThread("output-opcua")
        self._server: Server | None = None
        self._nodes: dict[str, dict[str, object]] = {}
        self._types: dict[str, ua.VariantType] = dict(VARIABLES) | {f"LastReject.{n}": t for n, t in REJECT_VARIABLES}
        self._copier: asyncio.Task | None = None
        self.namespace_index: int | None = None
        self.port: int | None = None

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://{self.config.host}:{self.port or self.config.port}/persense/"

    # -- life ---------------------------------------------------------------------------------------
    def start(self) -> None:
        config = self.config
        if config.allow_anonymous:
            log.warning("INSECURE: opcua: anonymous clients are let in (allow_anonymous)%s",
                        ", without encryption (security none)" if config.security == "none" else "")
        if not is_loopback(config.host) and config.security == "none":
            log.warning("INSECURE: opcua: serving %s beyond loopback without security", config.host)
        password = config.credentials.secret()
        self._loop.start()
        try:
            self._loop.call(lambda: self._serve(password))
        except UserError:
            self._loop.stop()
            raise
        except Exception as exc:
            self._loop.stop()
            raise UserError(f"opcua: cannot serve on {config.host}:{config.port}: {first_line(exc)}") from None
        self.metrics.output_up.labels(self.name).set(1)
        log.info("opcua: serving %s (security %s, %s)", self.endpoint, config.security,
                 "anonymous allowed" if config.allow_anonymous else f"user {config.credentials.username}")

    async def _serve(self, password: str | None) -> None:
        config = self.config
        server = Server(user_manager=_Users(config.credentials.username, password, config.allow_anonymous))
        # Before init (seconds: the standard address space): a bad file or a taken port fails at once.
        if config.security == "Basic256Sha256":
            server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
            for what, path, load in (("certificate", config.certificate, server.load_certificate),
                                     ("private key", config.private_key, server.load_private_key)):
                try:
                    content = path.read_bytes()
                    await load(content, format="pem" if content.lstrip().startswith(b"-----BEGIN") else "der")
                except Exception as exc:
                    raise UserError(f"opcua: cannot load the {what} {path}: {first_line(exc)}") from None
        else:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        check_port_free("opcua", config.host, config.port)
        await server.init()
        server.set_server_name("PerSense Stream")
        await server.set_application_uri(APPLICATION_URI)
        server.set_endpoint(f"opc.tcp://{config.host}:{config.port}/persense/")
        tokens = [ua.UserNameIdentityToken] if config.credentials.given else []
        if config.allow_anonymous:
            tokens.append(ua.AnonymousIdentityToken)
        server.set_identity_tokens(tokens)
        index = self.namespace_index = await server.register_namespace(config.namespace)
        root = await server.nodes.objects.add_object(ua.NodeId("PerSense", index), ua.QualifiedName("PerSense", index))
        for camera in self.cameras:
            folder = await root.add_object(ua.NodeId(camera, index), ua.QualifiedName(camera, index))
            nodes = self._nodes[camera] = {}
            for name, kind in VARIABLES:
                nodes[name] = await folder.add_variable(ua.NodeId(f"{camera}.{name}", index),
                                                        ua.QualifiedName(name, index), _initial(kind), kind)
            reject = await folder.add_object(ua.NodeId(f"{camera}.LastReject", index),
                                             ua.QualifiedName("LastReject", index))
            for name, kind in REJECT_VARIABLES:
                nodes[f"LastReject.{name}"] = await reject.add_variable(
                    ua.NodeId(f"{camera}.LastReject.{name}", index), ua.QualifiedName(name, index), _initial(kind),
                    kind)
        await server.start()
        self._server = server
        self.port = server.bserver._server.sockets[0].getsockname()[1]
        self._copier = asyncio.get_running_loop().create_task(self._copy_forever())

    async def _copy_forever(self) -> None:
        written: dict[str, int] = {}
        failures = 0
        while True:
            for camera, figures in self.board.snapshot().items():
                if written.get(camera) == figures.changes:
                    continue
                written[camera] = figures.changes
                try:
                    for name, value in variable_values(figures).items():
                        await self._nodes[camera][name].write_value(ua.Variant(value, self._types[name]))
                except Exception:  # one odd value (out of its type's range) must not freeze every variable
                    failures += 1
                    self.metrics.output_dropped.labels(self.name, "unreadable").inc()
                    if failures == 1 or failures % 100 == 0:
                        log.exception("opcua: camera %s: writing its variables failed (%d so far)", camera, failures)
            await asyncio.sleep(UPDATE_S)

    def stop(self) -> None:
        if self._server is not None and self._loop.alive():
            try:
                self._loop.call(self._shutdown, timeout=5.0)
            except Exception as exc:  # stopping goes on whatever the server says
                log.warning("opcua: stopping the server: %s", first_line(exc))
        self._loop.stop()
        self.metrics.output_up.labels(self.name).set(0)

    async def _shutdown(self) -> None:
        if self._copier is not None:
            self._copier.cancel()
        await self._server.stop()

    def alive(self) -> bool:
        return self._loop.alive() and (self._copier is None or not self._copier.done())

    def status(self) -> dict:
        return {"state": "serving" if self.alive() else "degraded", "endpoint": self.endpoint}

    # -- the publisher's thread -----------------------------------------------------------------------
    def offer(self, camera: str, kind: str, payload: dict) -> None:
        if self.board.fold(camera, kind, payload) is not None:
            self.metrics.output_messages.labels(self.name).inc()


def _initial(kind: ua.VariantType):
    return {ua.VariantType.String: "", ua.VariantType.Double: 0.0, ua.VariantType.Boolean: False,
            ua.VariantType.DateTime: _EPOCH}.get(kind, 0)
