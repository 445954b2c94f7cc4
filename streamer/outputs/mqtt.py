"""The MQTT output: results, tallies, rejects and camera states as JSON on the plant's broker (paho-mqtt).

Topics (docs/plant-mqtt.md): `<prefix>/<camera>/result` (a summary per result), `/tally`, `/reject`, `/state`
(retained: a camera's source state), and `<prefix>/status` (retained `online`, and `offline` as the last will
and at a clean stop).

Threads: the publisher's thread only puts into a bounded hand-off queue (`offer`); this output's sender
thread turns each message into JSON and gives it to paho, whose own network thread talks to the broker. While
the broker is away or slow, paho holds QoS 1 and 2 messages (up to `queue_size`, then new ones are dropped and
counted) and sends them when it is back; a full hand-off queue (the sender starved) drops and counts too. So a
slow or dead broker costs the frame loop nothing.
"""

from __future__ import annotations

import json
import logging
import queue
import ssl
import threading
import time

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from streamer.errors import UserError, first_line
from streamer.outputs.config import MqttConfig

log = logging.getLogger(__name__)

HANDOFF_SIZE = 1024  # messages between the publisher's thread and the sender; the sender drains it within ms
# CONNACK: bad user name or password, not authorized (MQTT 5's codes; paho maps 3.1.1's 4 and 5 to them)
_REFUSED_CREDENTIALS = (134, 135)
_STOP_FLUSH_S = 2.0  # at stop, how long queued messages get to reach the broker


class MqttOutput:
    """Args: config: `stream.outputs.mqtt`; metrics: StreamMetrics (its output_* series)."""

    name = "mqtt"

    def __init__(self, config: MqttConfig, metrics, clock=time.monotonic):
        self.config, self.metrics, self.clock = config, metrics, clock
        metrics.output_series(self.name)
        self._handoff: queue.Queue[tuple[str, str, dict]] = queue.Queue(maxsize=HANDOFF_SIZE)
        self._last_result: dict[str, float] = {}
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._answered = threading.Event()  # the broker answered a connect (accepted or refused)
        self._lock = threading.Lock()
        self._down_since: float | None = clock()
        self._connects = 0
        self.refused: str | None = None  # the broker's reason for refusing us, while it does
        self._thread = threading.Thread(target=self._run, name="output-mqtt", daemon=True)
        self.client = self._client()

    @property
    def status_topic(self) -> str:
        return f"{self.config.prefix}/status"

    def _client(self) -> paho.Client:
        config = self.config
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=config.client_id, clean_session=True,
                             protocol=paho.MQTTv311)
        client.max_queued_messages_set(config.queue_size)
        client.reconnect_delay_set(1, config.reconnect_max_s)
        if config.credentials.given:
            client.username_pw_set(config.credentials.username, config.credentials.secret())
        if config.tls is not None:
            tls = config.tls
            try:
                client.tls_set(ca_certs=tls.ca_file and str(tls.ca_file), certfile=tls.cert_file and str(tls.cert_file),
                               keyfile=tls.key_file and str(tls.key_file), cert_reqs=ssl.CERT_REQUIRED)
            except (OSError, ssl.SSLError, ValueError) as exc:
                raise UserError(f"mqtt: cannot load the TLS files: {first_line(exc)}") from None
            if tls.insecure_skip_verify:
                log.warning("INSECURE: mqtt: the broker's certificate and name are not checked (insecure_skip_verify)")
                client.tls_insecure_set(True)
        client.will_set(self.status_topic, _state_payload("offline"), qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = lambda client, userdata: self._answered.set()  # refused or unreachable: no wait
        client.on_publish = self._on_publish
        return client

    # -- life ---------------------------------------------------------------------------------------
    def start(self) -> None:
        """Connect (the broker's answer is awaited up to connect_timeout_s) and start the sender.

        Raises UserError where the broker refuses the credentials; an unreachable broker is reported (degraded)
        and retried while the line runs."""
        config = self.config
        try:
            self.client.connect_async(config.host, config.port, keepalive=config.keepalive_s)
        except (OSError, ValueError) as exc:
            raise UserError(f"mqtt: cannot connect to {config.host}:{config.port}: {first_line(exc)}") from None
        self.client.loop_start()
        self._thread.start()
        self._answered.wait(config.connect_timeout_s)
        if self.refused is not None:
            self.stop()
            raise UserError(f"mqtt: the broker {config.host}:{config.port} refused the connection: {self.refused}")
        if not self._connected.is_set():
            log.warning("mqtt: the broker %s:%d did not answer within %g s; running on without it, reconnecting "
                        "(messages are held up to %d)", config.host, config.port, config.connect_timeout_s,
                        config.queue_size)

    def stop(self) -> None:
        """Send what is queued (up to 2 s), say offline (retained), disconnect. Safe to call twice."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(_STOP_FLUSH_S)
        if self._connected.is_set():
            deadline = self.clock() + _STOP_FLUSH_S
            info = self.client.publish(self.status_topic, _state_payload("offline"), qos=1, retain=True)
            while self.clock() < deadline and (self.queued() > 0 or not info.is_published()):
                time.sleep(0.02)
        self.client.disconnect()
        self.client.loop_stop()
        self._note_down_time()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def queued(self) -> int:
        """Messages paho holds (in flight or waiting for the broker)."""
        return len(self.client._out_messages)  # paho has no public count; its own bound uses this dict

    def status(self) -> dict:
        connected = self._connected.is_set()
        doc = {"state": "connected" if connected else "degraded", "broker": f"{self.config.host}:{self.config.port}",
               "queued": self.queued()}
        if not connected:
            doc["reason"] = self.refused or "the broker is not reachable; reconnecting"
        return doc

    # -- the publisher's thread -----------------------------------------------------------------------
    def offer(self, camera: str, kind: str, payload: dict) -> None:
        if kind == "status" and payload.get("event") == "heartbeat":
            return  # the retained online/offline status (and the broker's keepalive) say the process is alive
        if kind == "result":
            if not self.config.results:
                return
            now = self.clock()
            if now - self._last_result.get(camera, -1e18) < self.config.result_interval_s:
                return
            self._last_result[camera] = now
        try:
            self._handoff.put_nowait((camera, kind, payload))
        except queue.Full:
            self.metrics.output_dropped.labels(self.name, "queue_full").inc()

    # -- the sender thread --------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set() or not self._handoff.empty():
            try:
                camera, kind, payload = self._handoff.get(timeout=0.1)
            except queue.Empty:
                continue
            self._send(camera, kind, payload)

    def _send(self, camera: str, kind: str, payload: dict) -> None:
        retain = False
        if kind == "status":
            kind, retain = "state", True  # state changes only (heartbeats stay behind): the newest is kept
        try:
            body = json.dumps(payload, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError):
            self.metrics.output_dropped.labels(self.name, "unreadable").inc()
            return
        info = self.client.publish(f"{self.config.prefix}/{camera}/{kind}", body, qos=self.config.qos, retain=retain)
        if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE or (info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN
                                                            and self.config.qos == 0):
            self.metrics.output_dropped.labels(self.name, "queue_full").inc()

    # -- paho's network thread ----------------------------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.refused = str(reason_code)
            if reason_code.value in _REFUSED_CREDENTIALS:
                log.warning("mqtt: the broker refused the connection: %s (check the username and password)",
                            reason_code)
            self._answered.set()
            return
        self.refused = None
        with self._lock:
            self._connects += 1
            if self._connects > 1:
                self.metrics.output_reconnects.labels(self.name).inc()
                log.info("mqtt: connected to %s:%d again", self.config.host, self.config.port)
            else:
                log.info("mqtt: connected to %s:%d, topics %s/<camera>/...", self.config.host, self.config.port,
                         self.config.prefix)
        self._note_down_time()
        client.publish(self.status_topic, _state_payload("online"), qos=1, retain=True)
        self._connected.set()
        self._answered.set()
        self.metrics.output_up.labels(self.name).set(1)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        self.metrics.output_up.labels(self.name).set(0)
        with self._lock:
            if self._down_since is None:
                self._down_since = self.clock()
        if was and not self._stop.is_set():
            log.warning("mqtt: lost the broker %s:%d (%s); reconnecting, holding up to %d messages",
                        self.config.host, self.config.port, reason_code, self.config.queue_size)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self.metrics.output_messages.labels(self.name).inc()

    def _note_down_time(self) -> None:
        with self._lock:
            if self._down_since is not None:
                self.metrics.output_down_seconds.labels(self.name).inc(max(self.clock() - self._down_since, 0.0))
                self._down_since = None


def _state_payload(state: str) -> str:
    return json.dumps({"v": 1, "state": state})
