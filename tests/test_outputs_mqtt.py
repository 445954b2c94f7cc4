"""The MQTT output against Debian's mosquitto broker, started (and killed) by the tests."""

from __future__ import annotations

import json
import logging
import threading
import time

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from streamer.errors import UserError
from streamer.outputs.config import MqttConfig
from streamer.outputs.mqtt import MqttOutput
from streamer.stream.metrics import StreamMetrics
from tests.peers.mosquitto import Mosquitto
from tests.test_stream_e2e import _free_port
from tests.waiting import wait_until


class Subscriber:
    """A paho client that keeps its session (clean_session off, QoS 1), so a restarted broker that saved it
    queues what arrives while the subscriber is away."""

    def __init__(self, port: int, topic: str, client_id: str = "test-subscriber", **login):
        self.messages: list[tuple[str, dict, bool]] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        if login:
            self.client.username_pw_set(login["username"], login["password"])
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *args: self.subscribed.set()
        self.client.on_connect = lambda client, *args: client.subscribe(topic, qos=1)
        self.client.reconnect_delay_set(1, 1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.subscribed.wait(10)

    def _on_message(self, client, userdata, message):
        with self.lock:
            self.messages.append((message.topic, json.loads(message.payload), message.retain))

    def payloads(self, topic: str) -> list[dict]:
        with self.lock:
            return [payload for t, payload, _ in self.messages if t == topic]

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def _metric(metrics: StreamMetrics, name: str, **labels) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def _tally(seq: int) -> dict:
    return {"schema": "persense.tally/1", "camera": "cam0", "seq": seq, "passed_total": seq * 3}


def test_the_broker_killed_for_10_s_loses_nothing_queued_and_the_gap_is_counted(tmp_path):
    port = _free_port()
    broker = Mosquitto(tmp_path, port).start()
    subscriber = Subscriber(port, "plant/#")
    metrics = StreamMetrics(["cam0"])
    output = MqttOutput(MqttConfig(enabled=True, port=port, prefix="plant", queue_size=500, reconnect_max_s=2),
                        metrics)
    try:
        output.start()
        assert output.status()["state"] == "connected"
        for seq in range(20):
            output.offer("cam0", "tally", _tally(seq))
        assert wait_until(lambda: len(subscriber.payloads("plant/cam0/tally")) == 20)
        broker.kill()
        assert wait_until(lambda: output.status()["state"] == "degraded", timeout=5)
        assert _metric(metrics, "persense_output_up", output="mqtt") == 0
        gap_start = time.monotonic()
        seq = 20
        while time.monotonic() - gap_start < 10:  # the line runs on: 100 messages while the broker is away
            if seq < 120:
                output.offer("cam0", "tally", _tally(seq))
                seq += 1
            time.sleep(0.05)
        broker.start()
        for seq in range(120, 140):
            output.offer("cam0", "tally", _tally(seq))
        # QoS 1 is at least once: a message in flight when the broker died may arrive twice.
        seqs = lambda: sorted({payload["seq"] for payload in subscriber.payloads("plant/cam0/tally")})  # noqa: E731
        assert wait_until(lambda: seqs() == list(range(140)), timeout=20), seqs()  # every message queued arrived
        assert output.status()["state"] == "connected"
        assert _metric(metrics, "persense_output_reconnects_total", output="mqtt") == 1
        assert _metric(metrics, "persense_output_down_seconds_total", output="mqtt") >= 9.5
        assert _metric(metrics, "persense_output_dropped_total", output="mqtt", reason="queue_full") == 0
        assert _metric(metrics, "persense_output_up", output="mqtt") == 1
        statuses = subscriber.payloads("plant/status")
        assert statuses[-1]["state"] == "online"
    finally:
        output.stop()
        subscriber.close()
        broker.stop()


def test_beyond_its_bound_messages_are_dropped_and_counted_and_the_rest_arrive(tmp_path):
    port = _free_port()
    metrics = StreamMetrics(["cam0"])
    output = MqttOutput(MqttConfig(enabled=True, port=port, queue_size=30, connect_timeout_s=0.5,
                                   reconnect_max_s=1), metrics)
    try:
        output.start()  # no broker yet: the line runs on, degraded
        assert output.status()["state"] == "degraded" and "not reachable" in output.status()["reason"]
        for seq in range(50):
            output.offer("cam0", "tally", _tally(seq))
        assert wait_until(lambda: _metric(metrics, "persense_output_dropped_total", output="mqtt",
                                          reason="queue_full") == 20)
        with Mosquitto(tmp_path, port):
            subscriber = Subscriber(port, "persense/#")
            try:
                assert wait_until(lambda: len(subscriber.payloads("persense/cam0/tally")) >= 30, timeout=15)
                time.sleep(0.3)
                assert [p["seq"] for p in subscriber.payloads("persense/cam0/tally")] == list(range(30))
            finally:
                subscriber.close()
    finally:
        output.stop()


def test_results_states_and_rejects_go_to_their_topics_and_the_last_will_says_offline(tmp_path):
    port = _free_port()
    with Mosquitto(tmp_path, port):
        subscriber = Subscriber(port, "persense/#")
        metrics = StreamMetrics(["cam0"])
        output = MqttOutput(MqttConfig(enabled=True, port=port, result_interval_s=3600), metrics)
        try:
            output.start()
            output.offer("cam0", "result", {"v": 1, "seq": 0, "count": 7})
            output.offer("cam0", "result", {"v": 1, "seq": 1, "count": 8})  # within result_interval_s: left out
            output.offer("cam0", "status", {"event": "heartbeat", "state": "streaming"})  # heartbeats stay behind
            output.offer("cam0", "status", {"event": "state", "state": "stalled"})
            reject = {"v": 1, "camera": "cam0", "frame_id": 12, "track_id": 4, "station": "gate", "reasons": [],
                      "decided_wall": 1.0, "due_wall": 2.0, "due_mono": 3.0, "pulse_ms": 80, "missed": False}
            output.offer("cam0", "reject", reject)
            assert wait_until(lambda: subscriber.payloads("persense/cam0/reject"))
            assert subscriber.payloads("persense/cam0/reject") == [reject]
            assert [p["count"] for p in subscriber.payloads("persense/cam0/result")] == [7]
            assert [p["state"] for p in subscriber.payloads("persense/cam0/state")] == ["stalled"]
        finally:
            output.client.loop_stop()  # gone without a goodbye: the broker publishes the last will
            output.client._sock_close()
            subscriber.close()
        late = Subscriber(port, "persense/status", client_id="late-subscriber")  # retained: seen on subscribing
        try:
            assert wait_until(lambda: late.payloads("persense/status") == [{"v": 1, "state": "offline"}], timeout=10)
            assert late.payloads("persense/status")
        finally:
            late.close()


def test_wrong_credentials_are_one_line_at_start_and_the_password_never_reaches_the_log(tmp_path, caplog,
                                                                                       monkeypatch):
    port = _free_port()
    monkeypatch.setenv("PLANT_MQTT_PASSWORD", "not-the-one-9f3b")
    config = MqttConfig.model_validate({"enabled": True, "port": port, "credentials": {
        "username": "vision", "password_env": "PLANT_MQTT_PASSWORD"}})
    with Mosquitto(tmp_path, port, users={"vision": "right-one-77c1"}), caplog.at_level(logging.DEBUG):
        output = MqttOutput(config, StreamMetrics(["cam0"]))
        with pytest.raises(UserError) as refused:
            output.start()
    assert "refused" in str(refused.value) and "\n" not in str(refused.value)
    assert "not-the-one-9f3b" not in caplog.text and "not-the-one-9f3b" not in str(refused.value)
    assert "not-the-one-9f3b" not in repr(config) and "not-the-one-9f3b" not in str(config.model_dump())
    assert not output.alive()


def test_the_right_credentials_connect(tmp_path):
    port = _free_port()
    config = MqttConfig.model_validate({"enabled": True, "port": port,
                                        "credentials": {"username": "vision", "password": "right-one-77c1"}})
    with Mosquitto(tmp_path, port, users={"vision": "right-one-77c1", "reader": "r-2"}):
        output = MqttOutput(config, StreamMetrics(["cam0"]))
        subscriber = Subscriber(port, "persense/#", username="reader", password="r-2")
        try:
            output.start()
            output.offer("cam0", "tally", _tally(1))
            assert wait_until(lambda: subscriber.payloads("persense/cam0/tally") == [_tally(1)])
        finally:
            output.stop()
            subscriber.close()


def test_tls_files_that_do_not_load_are_one_line(tmp_path):
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    config = MqttConfig.model_validate({"enabled": True, "tls": {"ca_file": str(bad)}})
    with pytest.raises(UserError, match="mqtt: cannot load the TLS files"):
        MqttOutput(config, StreamMetrics(["cam0"]))
    config = MqttConfig.model_validate({"enabled": True, "tls": {"ca_file": str(tmp_path / "missing.pem")}})
    with pytest.raises(UserError, match="mqtt: cannot load the TLS files"):
        MqttOutput(config, StreamMetrics(["cam0"]))


def _tls_files(folder):
    """A CA and a broker certificate for 127.0.0.1 signed by it (PEM files) -> (ca, certificate, key)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test plant CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256()))
    broker = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "broker")]))
              .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
              .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
              .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                             critical=False).sign(ca_key, hashes.SHA256()))
    paths = folder / "ca.pem", folder / "broker.pem", folder / "broker-key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(broker.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


def test_over_tls_the_broker_s_certificate_is_checked(tmp_path):
    ca, certificate, key = _tls_files(tmp_path)
    port, tls_port = _free_port(), _free_port()
    with Mosquitto(tmp_path, port, tls=(tls_port, certificate, key)):
        subscriber = Subscriber(port, "persense/#")  # on the plain listener
        trusted = MqttOutput(MqttConfig.model_validate({"enabled": True, "port": tls_port, "client_id": "a",
                                                        "tls": {"ca_file": str(ca)}}), StreamMetrics(["cam0"]))
        # Trusting only its own certificate as a CA: the broker's chain does not verify.
        stranger = MqttOutput(MqttConfig.model_validate({
            "enabled": True, "port": tls_port, "client_id": "b", "connect_timeout_s": 2,
            "tls": {"ca_file": str(certificate)}}), StreamMetrics(["cam0"]))
        try:
            trusted.start()
            trusted.offer("cam0", "tally", _tally(5))
            assert wait_until(lambda: subscriber.payloads("persense/cam0/tally") == [_tally(5)])
            stranger.start()
            assert stranger.status()["state"] == "degraded"
        finally:
            trusted.stop()
            stranger.stop()
            subscriber.close()
