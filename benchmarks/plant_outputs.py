"""What the plant's outputs cost the stream when their peers misbehave: frames/s with no outputs against frames/s
with MQTT, OPC UA and Modbus TCP on while the MQTT broker is slow (it accepts the connection and then reads
nothing, so every message waits in the client's bounded queue) and a Modbus client polls at 10 Hz but never reads
an answer; the OPC UA server runs with no client.

A real StreamProcessor on the unpaced simulator (as fast as the pipeline goes), embedded engines, tracking on
(tally messages), every result summarised to MQTT. Windows alternate (none, outputs, outputs, none, ...) so that
drift of the shared machine falls on both; each window is a fresh processor (outputs are set at start), warmed
up before it is timed. The misbehaving peers run in a child process, so their CPU does not share this process's
interpreter lock.

Run: PYTHONPATH=. .venv/bin/python benchmarks/plant_outputs.py [--seconds 20] [--rounds 2]
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import socket
import struct
import tempfile
import time

from streamer.config import Config, EnginesConfig
from streamer.engine_factory import build_engines
from streamer.stream.config import StreamConfig
from streamer.stream.processor import StreamProcessor
from streamer.stream.support import initial_support

_CONNACK = b"\x20\x02\x00\x00"  # MQTT 3.1.1: session not present, accepted


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def slow_broker(listener: socket.socket, stop) -> None:
    """Accept, answer the CONNECT, then read nothing: the client's socket buffer fills and its queue grows."""
    listener.settimeout(0.5)
    held = []
    while not stop.is_set():
        try:
            conn, _ = listener.accept()
            conn.settimeout(5.0)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            conn.recv(4096)  # the CONNECT
            conn.sendall(_CONNACK)
        except OSError:
            continue
        held.append(conn)  # never read again


def stuck_modbus_client(port: int, stop) -> None:
    """Read holding registers 0-20 ten times a second and never read an answer."""
    deadline = time.monotonic() + 30
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            conn = socket.create_connection(("127.0.0.1", port), timeout=1)
            break
        except OSError:
            time.sleep(0.2)
    else:
        return
    transaction = 0
    while not stop.is_set():
        transaction = (transaction + 1) & 0xFFFF
        try:
            conn.sendall(struct.pack(">HHHBBHH", transaction, 0, 6, 1, 3, 0, 21))
        except OSError:  # the server went away (its processor stopped)
            break
        stop.wait(0.1)
    conn.close()


def peers(mqtt_port: int, modbus_port: int, ready, stop) -> None:
    import threading

    listener = socket.create_server(("127.0.0.1", mqtt_port))
    ready.set()
    threads = [threading.Thread(target=slow_broker, args=(listener, stop)),
               threading.Thread(target=stuck_modbus_client, args=(modbus_port, stop))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _cpu_s() -> float:
    """This process's CPU seconds (all its threads; the misbehaving peers' child process is not counted)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def window(engines, support, cache: str, outputs: bool, seconds: float, warmup: float) -> dict:
    raw = {"sources": [{"uri": "sim:?objects=60&fps=0", "camera_id": "cam0"}],
           "publish": {"endpoint": "tcp://127.0.0.1:*"}, "control": {"endpoint": None}, "metrics": {"port": None},
           "console": {"enabled": False}, "cache_dir": cache, "tally": {"enabled": True, "interval_s": 1.0}}
    spawn = multiprocessing.get_context("spawn")
    stop, ready = spawn.Event(), spawn.Event()
    child = None
    if outputs:
        mqtt_port, modbus_port = _free_port(), _free_port()
        raw["outputs"] = {"mqtt": {"enabled": True, "port": mqtt_port, "queue_size": 50},
                          "modbus": {"enabled": True, "port": modbus_port},
                          "opcua": {"enabled": True, "port": 0, "security": "none", "allow_anonymous": True}}
        child = spawn.Process(target=peers, args=(mqtt_port, modbus_port, ready, stop))
        child.start()
        if not ready.wait(60):
            raise RuntimeError("the misbehaving peers did not start")
    stream = StreamConfig.model_validate(raw)
    proc = StreamProcessor(Config(stream=stream), engines, support)
    proc.start()
    try:
        time.sleep(warmup)
        frames0, t0, cpu0 = proc.worker.processed.get("cam0", 0), time.monotonic(), _cpu_s()
        time.sleep(seconds)
        frames, elapsed = proc.worker.processed.get("cam0", 0) - frames0, time.monotonic() - t0
        cpu = _cpu_s() - cpu0
        sample = proc.metrics.registry.get_sample_value
        row = {"outputs": outputs, "frames": frames, "seconds": round(elapsed, 2), "fps": round(frames / elapsed, 2),
               "cpu_s": round(cpu, 2), "cpu_ms_per_frame": round(cpu / max(frames, 1) * 1e3, 1)}
        if outputs:
            mqtt = proc.outputs.outputs[0]
            row.update(mqtt_queued=mqtt.queued(), mqtt_delivered=int(sample(
                "persense_output_messages_total", {"output": "mqtt"}) or 0), mqtt_dropped=int(sample(
                    "persense_output_dropped_total", {"output": "mqtt", "reason": "queue_full"}) or 0))
    finally:
        proc.stop()
        stop.set()
        if child is not None:
            child.join(10)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=2, help="each round is none, outputs, outputs, none")
    args = parser.parse_args()
    engines = build_engines(EnginesConfig())
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        stream = StreamConfig.model_validate({"sources": [{"uri": "sim:?objects=60&fps=0", "camera_id": "cam0"}]})
        support = initial_support(None, None, stream.sources)
        for _ in range(args.rounds):
            for outputs in (False, True, True, False):
                rows.append(window(engines, support, cache, outputs, args.seconds, args.warmup))
                print(rows[-1], flush=True)
    rate = {flag: sum(r["frames"] for r in rows if r["outputs"] is flag) /
            sum(r["seconds"] for r in rows if r["outputs"] is flag) for flag in (False, True)}
    cpu = {flag: sum(r["cpu_s"] for r in rows if r["outputs"] is flag) /
           sum(r["frames"] for r in rows if r["outputs"] is flag) * 1e3 for flag in (False, True)}
    print(f"frames/s without outputs {rate[False]:.2f}, with outputs and misbehaving peers {rate[True]:.2f}: "
          f"ratio {rate[True] / rate[False]:.3f}; CPU per frame {cpu[False]:.1f} ms against {cpu[True]:.1f} ms: "
          f"ratio {cpu[True] / cpu[False]:.3f}")


if __name__ == "__main__":
    main()
