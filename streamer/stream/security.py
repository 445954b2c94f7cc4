"""CURVE, ZeroMQ's own security, for the control and publish sockets (through pyzmq's zmq.auth).

With a server key and a folder of authorized client keys, both sockets are CURVE servers: traffic is
encrypted, and pyzmq's authenticator thread (ZAP) admits only clients whose public key is in the folder.
Anonymous clients fail the handshake and unknown keys are refused by the authenticator; neither gets
anything, and both are counted by a monitor thread watching the sockets' handshake failures.

Key files are pyzmq's certificate format: NAME.key (public) and NAME.key_secret (public and secret, readable
by its owner only). `persense keys DIR --name NAME` writes a pair.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import struct
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import zmq
import zmq.auth
import zmq.utils.z85
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils.monitor import parse_monitor_message

from streamer.errors import UserError, first_line
from streamer.stream.endpoints import is_loopback

log = logging.getLogger(__name__)

KEYS_HINT = ("make keys with 'persense keys DIR --name server' and 'persense keys DIR --name CLIENT', then run with "
             "--server-key DIR/server.key_secret --authorized-keys FOLDER_OF_CLIENT_KEYS (or --insecure to accept "
             "anyone on the network)")
_ZAP_DOMAIN = b"persense"
_REFUSED_EVENTS = zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | \
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
_Z85 = frozenset(zmq.utils.z85.Z85CHARS)


def write_keys(directory: Path, name: str) -> tuple[Path, Path]:
    """Write DIR/NAME.key and DIR/NAME.key_secret (mode 0600, never readable by others, not even briefly)
    -> their paths. UserError when the pair exists or the folder cannot be written."""
    if not name or "/" in name or name.startswith("."):
        raise UserError(f"--name must be a plain file name, got {name!r}")
    public, secret = directory / f"{name}.key", directory / f"{name}.key_secret"
    for path in (public, secret):
        if path.exists():
            raise UserError(f"{path} exists; remove it first or choose another --name")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=directory, prefix=".keys-"))  # mode 0700
        try:
            made_public, made_secret = (Path(p) for p in zmq.auth.create_certificates(staging, name))
            os.chmod(made_secret, 0o600)
            os.chmod(made_public, 0o644)
            os.replace(made_public, public)
            os.replace(made_secret, secret)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    except OSError as exc:
        raise UserError(f"cannot write keys in {directory}: {exc.strerror or first_line(exc)}") from None
    return public, secret


def load_keypair(path: Path, what: str) -> tuple[bytes, bytes]:
    """A NAME.key_secret file -> (public key, secret key), Z85; UserError with one line when it is not one."""
    public, secret = _load(path, what)
    if not secret:
        raise UserError(f"{what} {path} holds no secret key (give the .key_secret file)")
    if not _is_curve_key(secret):
        # ZeroMQ would refuse it only when the socket is made, with a bare "Invalid argument".
        raise UserError(f"{what} {path} holds a damaged secret-key (not 40 Z85 characters): make a new pair with "
                        "persense keys")
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("%s %s is readable by others (mode %o): chmod 600 it", what, path, mode & 0o777)
    return public, secret


def load_public_key(path: Path, what: str) -> bytes:
    """A NAME.key (or .key_secret) file -> its public key, Z85."""
    return _load(path, what)[0]


def _load(path: Path, what: str) -> tuple[bytes, bytes | None]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} not found: {path}")
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise UserError(f"{what} {path} is not a ZeroMQ certificate: {first_line(exc)}") from None
    if not _is_curve_key(public):
        raise UserError(f"{what} {path} is not a ZeroMQ certificate (no 40-character Z85 public-key)")
    return public, secret


def _is_curve_key(key: bytes | None) -> bool:
    """Whether `key` is a CURVE key as ZeroMQ takes it in text: 40 Z85 characters that encode 32 bytes."""
    if not key or len(key) != 40 or not set(key) <= _Z85:
        return False
    try:
        zmq.utils.z85.decode(key)
    except struct.error:  # a group of five characters beyond 2^32
        return False
    return True


def client_socket_options(client_key: Path, server_public_key: Path) -> dict[int, bytes]:
    """Options making a client socket a CURVE client: its own key pair, and the server's public key."""
    public, secret = load_keypair(Path(client_key), "client key")
    return {zmq.CURVE_PUBLICKEY: public, zmq.CURVE_SECRETKEY: secret,
            zmq.CURVE_SERVERKEY: load_public_key(Path(server_public_key), "server public key")}


def apply_options(sock: zmq.Socket, options: dict) -> None:
    for option, value in options.items():
        sock.setsockopt(option, value)


@dataclass(frozen=True)
class CurveServer:
    """The server's key pair and the folder of authorized client public keys (*.key)."""

    public_key: bytes
    secret_key: bytes
    authorized_keys: Path

    @classmethod
    def load(cls, server_key: Path, authorized_keys: Path) -> "CurveServer":
        public, secret = load_keypair(Path(server_key), "server key")
        folder = Path(authorized_keys)
        if not folder.is_dir():
            raise UserError(f"authorized keys folder not found: {folder}")
        try:
            # The authenticator reads every *.key there the same way; one that is not a key would stop it.
            keys = zmq.auth.load_certificates(folder)
        except (OSError, ValueError) as exc:
            raise UserError(f"authorized keys folder {folder}: {first_line(exc)} (every *.key file there must be a "
                            "public key from persense keys)") from None
        if not keys:
            raise UserError(f"no client public keys (*.key) in the authorized keys folder {folder}")
        return cls(public, secret, folder)

    def socket_options(self) -> dict[int, int | bytes]:
        """Options making a socket a CURVE server that asks the authenticator about every client."""
        return {zmq.CURVE_SERVER: 1, zmq.CURVE_PUBLICKEY: self.public_key, zmq.CURVE_SECRETKEY: self.secret_key,
                zmq.ZAP_DOMAIN: _ZAP_DOMAIN}


def key_names(folder: Path) -> dict[str, str]:
    """The authorized keys folder -> {a client's public key (Z85): its name, the key file's stem}."""
    names = {}
    for path in sorted(Path(folder).glob("*.key")):
        try:
            public, _ = zmq.auth.load_certificate(path)
        except (OSError, ValueError):
            continue
        names[public.decode()] = path.stem
    return names


class _NamedKeys(ThreadAuthenticator):
    """The authenticator, naming each admitted client by its key file's name (the requests' User-Id), so that the
    audit trail says who changed something."""

    def __init__(self, context: zmq.Context, names: dict[str, str], **kwargs):
        super().__init__(context, **kwargs)
        self.names = names

    def curve_user_id(self, client_public_key: bytes) -> str:
        z85 = zmq.utils.z85.encode(client_public_key).decode()
        return self.names.get(z85, "key " + z85[:8])


class Authentication:
    """The authenticator thread (it must run before the sockets bind) and a thread counting refused clients.

    Args:
        on_refused: called with the socket's name ("control", "publish") for each refused handshake.
    """

    def __init__(self, context: zmq.Context, curve: CurveServer, on_refused: Callable[[str], None]):
        self.curve = curve
        self._on_refused = on_refused
        self._authenticator = _NamedKeys(context, key_names(curve.authorized_keys),
                                         log=logging.getLogger("persense.auth"))
        self._monitors: dict[zmq.Socket, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="auth-monitor", daemon=True)

    def start(self) -> None:
        self._authenticator.start()
        # Only the keys in the folder, read now (a key added or removed applies at the next start).
        self._authenticator.configure_curve(domain=_ZAP_DOMAIN.decode(), location=str(self.curve.authorized_keys))

    def watch(self, sockets: dict[str, zmq.Socket | None]) -> None:
        """Count the refused handshakes of each socket under its name, from a thread started here (call from the
        thread that owns the sockets, before they are handed to theirs)."""
        for name, sock in sockets.items():
            if sock is not None:
                self._monitors[sock.get_monitor_socket(_REFUSED_EVENTS)] = name
        self._thread.start()

    def _watch(self) -> None:
        poller = zmq.Poller()
        for monitor in self._monitors:
            poller.register(monitor, zmq.POLLIN)
        while not self._stop.is_set():
            try:
                ready = dict(poller.poll(200))
                for monitor in ready:
                    event = parse_monitor_message(monitor.recv_multipart())
                    if event["event"] & _REFUSED_EVENTS:
                        self._on_refused(self._monitors[monitor])
            except zmq.ZMQError as exc:
                if exc.errno == zmq.ETERM:
                    return
                log.debug("auth monitor: %s", exc.strerror)
            except Exception:
                log.exception("auth monitor: reading an event failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(1.0)
        for monitor in self._monitors:
            monitor.close(0)
        self._authenticator.stop()


def check_exposure(endpoints: dict[str, str | None], curve: bool, allow_insecure: bool, warn: bool = True) -> None:
    """Refuse to bind a socket beyond loopback without CURVE (UserError naming how to make keys), unless the
    operator opted out, which is logged as a warning (with `warn`; a check ahead of the real one passes False)."""
    exposed = [f"{name} {endpoint}" for name, endpoint in endpoints.items() if endpoint and not is_loopback(endpoint)]
    if not exposed or curve:
        return
    if allow_insecure:
        if not warn:
            return
        log.warning("INSECURE: %s reachable beyond this machine without authentication (--insecure); anyone who "
                    "reaches it can read results, pause the line or replace the product", ", ".join(exposed))
        return
    raise UserError(f"refusing to bind {', '.join(exposed)} beyond loopback without CURVE: {KEYS_HINT}")


def start_authentication(context: zmq.Context, stream, on_refused: Callable[[str], None]) -> Authentication | None:
    """For a StreamConfig: refuse exposed sockets without CURVE (check_exposure); with CURVE, load the keys and
    start the authenticator, which must run before the sockets bind -> it, or None without CURVE."""
    security = stream.security
    # A publisher that connects (a fleet's worker) binds nothing; the fleet checks the forwarder it connects to.
    endpoints = {"publish": None if stream.publish.connect else stream.publish.endpoint,
                 "control": stream.control.endpoint}
    check_exposure(endpoints, security.curve, stream.allow_insecure)
    if not security.curve:
        return None
    auth = Authentication(context, CurveServer.load(security.server_key, security.authorized_keys), on_refused)
    auth.start()
    log.info("CURVE on: clients need a key from %s", security.authorized_keys)
    return auth
