"""The OPC UA output, read by asyncua's own client: the variables, Basic256Sha256 with a user, refusals."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import logging
import socket
import time

import pytest
from asyncua import Client
from asyncua.crypto.cert_gen import dump_private_key_as_pem, generate_private_key, generate_self_signed_app_certificate
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from streamer.errors import UserError
from streamer.outputs.config import OpcUaConfig
from streamer.outputs.opcua import APPLICATION_URI, OpcUaOutput
from streamer.stream.metrics import StreamMetrics
from tests.test_stream_e2e import _free_port

PASSWORD = "line-7-secret-5e1d"


def make_certificate(folder, name: str, uri: str, usage) -> tuple:
    """A self-signed application certificate and key (PEM files) -> (certificate path, key path)."""
    key = generate_private_key()
    names = [x509.UniformResourceIdentifier(uri), x509.DNSName("localhost"),
             x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = generate_self_signed_app_certificate(key, name, {}, names, [usage])
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}-key.pem"
    cert_path.write_bytes(cert.public_bytes(Encoding.PEM))
    key_path.write_bytes(dump_private_key_as_pem(key))
    return cert_path, key_path


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    folder = tmp_path_factory.mktemp("opcua-certs")
    server = make_certificate(folder, "server", APPLICATION_URI, ExtendedKeyUsageOID.SERVER_AUTH)
    client = make_certificate(folder, "client", "urn:persense:test:client", ExtendedKeyUsageOID.CLIENT_AUTH)
    return server, client


def secure_config(certificates, **extra) -> OpcUaConfig:
    (cert, key), _ = certificates
    return OpcUaConfig.model_validate({"enabled": True, "port": _free_port(), "certificate": str(cert),
                                       "private_key": str(key), "credentials": {"username": "scada",
                                                                                "password": PASSWORD}, **extra})


async def _read(url: str, names: list[str], client_files=None, user=None, password=None) -> dict:
    client = Client(url, timeout=5)
    client.application_uri = "urn:persense:test:client"
    if client_files is not None:
        cert, key = client_files
        await client.set_security_string(f"Basic256Sha256,SignAndEncrypt,{cert},{key}")
    if user is not None:
        client.set_user(user)
        client.set_password(password)
    async with client:
        index = await client.get_namespace_index("urn:persense:stream")
        return {name: await client.get_node(f"ns={index};s={name}").read_value() for name in names}


def read(output: OpcUaOutput, names: list[str], **login) -> dict:
    return asyncio.run(_read(output.endpoint, names, **login))


def test_a_client_with_the_user_reads_each_camera_s_variables(certificates, caplog):
    metrics = StreamMetrics(["cam0", "cam1"])
    with caplog.at_level(logging.DEBUG):
        output = OpcUaOutput(secure_config(certificates), ["cam0", "cam1"], metrics)
        output.start()
    try:
        output.offer("cam1", "result", {"seq": 41, "count": 17, "match_quality": 0.91, "passed_total": 350})
        output.offer("cam1", "tally", {"passed_total": 349, "out_of_spec_total": 6})
        output.offer("cam1", "status", {"event": "state", "state": "stalled"})
        output.offer("cam1", "reject", {
            "v": 1, "camera": "cam1", "frame_id": 9, "track_id": 4711, "station": "gate",
            "reasons": [{"measure": "diameter", "value": 41.5, "min": 25.6, "max": 38.4, "unit": "mm"}],
            "decided_wall": 1767225600.0, "due_wall": 1767225600.5, "due_mono": 812.5, "pulse_ms": 80,
            "missed": False})
        time.sleep(0.3)  # the server copies changed figures every 50 ms
        names = ["cam1.Count", "cam1.PassedTotal", "cam1.OutOfSpecTotal", "cam1.MatchQuality", "cam1.SourceState",
                 "cam1.Results", "cam1.RejectsTotal", "cam1.LastReject.TrackId", "cam1.LastReject.DueTime",
                 "cam1.LastReject.Reasons", "cam1.LastReject.Station", "cam0.Count", "cam0.SourceState"]
        got = read(output, names, client_files=certificates[1], user="scada", password=PASSWORD)
        assert got["cam1.Count"] == 17 and got["cam1.PassedTotal"] == 350 and got["cam1.OutOfSpecTotal"] == 6
        assert got["cam1.MatchQuality"] == pytest.approx(0.91) and got["cam1.SourceState"] == "stalled"
        assert got["cam1.Results"] == 42 and got["cam1.RejectsTotal"] == 1 and got["cam1.LastReject.TrackId"] == 4711
        due = got["cam1.LastReject.DueTime"]
        assert abs(due.replace(tzinfo=dt.timezone.utc).timestamp() - 1767225600.5) < 1e-3
        assert json.loads(got["cam1.LastReject.Reasons"])[0]["value"] == 41.5
        assert got["cam1.LastReject.Station"] == "gate"
        assert got["cam0.Count"] == 0 and got["cam0.SourceState"] == "unknown"
    finally:
        output.stop()
    assert PASSWORD not in caplog.text


def test_without_credentials_or_without_security_a_client_is_refused(certificates):
    output = OpcUaOutput(secure_config(certificates), ["cam0"], StreamMetrics(["cam0"]))
    output.start()
    try:
        with pytest.raises(Exception) as anonymous:  # encrypted channel, no user
            read(output, ["cam0.Count"], client_files=certificates[1])
        assert "BadIdentityTokenRejected" in repr(anonymous.value) or "Bad" in repr(anonymous.value)
        with pytest.raises(Exception):  # the right user, a wrong password
            read(output, ["cam0.Count"], client_files=certificates[1], user="scada", password="guess")
        with pytest.raises(Exception):  # no security at all: the server offers no such endpoint
            read(output, ["cam0.Count"], user="scada", password=PASSWORD)
        assert read(output, ["cam0.Count"], client_files=certificates[1], user="scada",
                    password=PASSWORD) == {"cam0.Count": 0}
    finally:
        output.stop()


def test_anonymous_and_no_security_need_the_explicit_opt_out_which_is_logged(caplog):
    with pytest.raises(ValueError, match="allow_anonymous"):
        OpcUaConfig(enabled=True, security="none")
    with pytest.raises(ValueError, match="certificate"):
        OpcUaConfig(enabled=True, credentials={"username": "a", "password": "b"})
    config = OpcUaConfig(enabled=True, security="none", allow_anonymous=True, port=_free_port())
    output = OpcUaOutput(config, ["cam0"], StreamMetrics(["cam0"]))
    with caplog.at_level(logging.WARNING):
        output.start()
    try:
        assert "INSECURE: opcua: anonymous" in caplog.text
        output.offer("cam0", "result", {"seq": 0, "count": 3, "match_quality": 0.7})
        time.sleep(0.3)
        assert read(output, ["cam0.Count"]) == {"cam0.Count": 3}
    finally:
        output.stop()


def test_a_certificate_that_does_not_load_is_one_line(certificates, tmp_path):
    bad = tmp_path / "server.pem"
    bad.write_text("-----BEGIN CERTIFICATE-----\nnot one\n-----END CERTIFICATE-----\n")
    output = OpcUaOutput(secure_config(certificates, certificate=str(bad)), ["cam0"], StreamMetrics(["cam0"]))
    with pytest.raises(UserError, match="opcua: cannot load the certificate") as error:
        output.start()
    assert "\n" not in str(error.value) and not output.alive()


def test_a_port_in_use_is_one_line(certificates):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        output = OpcUaOutput(secure_config(certificates, port=held.getsockname()[1]), ["cam0"], StreamMetrics(["c"]))
        with pytest.raises(UserError, match="opcua: cannot serve on 127.0.0.1") as error:
            output.start()
        assert "\n" not in str(error.value)
