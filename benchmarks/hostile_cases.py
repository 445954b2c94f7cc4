"""Re-run the hostile cases of issue 11 against a real `persense run` and print the figures.

    python benchmarks/hostile_cases.py [--stuck-s 60] [--cases ...] [--code DIR] [--json hostile.json]

The processor runs with its defaults (the simulator, embedded engines; with --overlay, JPEG overlays, so that
a stuck subscriber's buffers fill sooner) on free ports at 127.0.0.1; --code runs another source tree's
processor (e.g. an export of main) for a before/after comparison. Cases:
deep JSON on the control socket; 140 and 200 MiB frames (ZeroMQ must drop them unread: the processor's
peak memory stays put); a 30000x30000 PNG bomb as set_support (refused in well under a second); a raw
subscriber that subscribes and never reads beside a healthy one (the healthy one must miss nothing);
out-of-range settings (one line, exit 2); SIGTERM early in start-up (exit 0).

Issue 24's cases (benchmarks/hostile_http.py and hostile_procs.py; the console then has a token): held_open (300 held-open
connections while /healthz and the console page are asked), deep_images (16-bit and float PNG/TIFF, CMYK
JPEG, RGBA WebP as set_support), viewers (results per second with 100 live viewers against none, and memory
after they left), uploads (three parallel 50 MP uploads: peak memory), fifo (a FIFO and a device as query,
support and --from), sighup (SIGHUP while running):

    python benchmarks/hostile_cases.py --cases held_open deep_images viewers uploads fifo sighup
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import zmq
from zmq.utils.monitor import recv_monitor_message

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import hostile_http, hostile_procs  # noqa: E402
from benchmarks.soak import free_port, rss_mib  # noqa: E402
from tests.peers.control_fuzz import png_bomb  # noqa: E402
from tests.peers.zmtp import StuckSubscriber  # noqa: E402

PERSENSE = [sys.executable, "-m", "streamer"]


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def request(context: zmq.Context, endpoint: str, frames: list[bytes], timeout_s: float = 30.0) -> dict | None:
    sock = context.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    try:
        sock.send_multipart(frames)
        return json.loads(sock.recv()) if sock.poll(int(timeout_s * 1000)) else None
    finally:
        sock.close()


def healthz(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def metric(port: int, line_start: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith(line_start + " "):
                return float(line.split()[-1])
    return float("nan")


def big_frame(context: zmq.Context, endpoint: str, mib: int, pid: int) -> dict:
    """Send one frame of `mib` MiB; ZeroMQ on the processor's side should drop the connection unread."""
    client = context.socket(zmq.DEALER)
    client.setsockopt(zmq.LINGER, 0)
    monitor = client.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    before = peak_rss_mib(pid)
    start = time.perf_counter()
    client.connect(endpoint)
    client.send_multipart([b"", b'{"cmd": "status"}', b"\0" * (mib * 1024 * 1024)])
    outcome = "no reply, not disconnected within 60 s"
    poller = zmq.Poller()
    poller.register(client, zmq.POLLIN)
    poller.register(monitor, zmq.POLLIN)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready = dict(poller.poll(500))
        if monitor in ready and recv_monitor_message(monitor)["event"] == zmq.EVENT_DISCONNECTED:
            outcome = "dropped by ZeroMQ (disconnected)"
            break
        if client in ready:
            outcome = f"answered: {client.recv_multipart()[-1][:80]!r}"
            break
    seconds = time.perf_counter() - start
    client.disable_monitor()
    monitor.close()
    client.close()
    return {"mib": mib, "outcome": outcome, "seconds": round(seconds, 2),
            "processor_peak_rss_mib_before": round(before, 1),
            "processor_peak_rss_mib_after": round(peak_rss_mib(pid), 1)}


def stuck_subscriber(context: zmq.Context, endpoint: str, http: int, seconds: float) -> dict:
    healthy = context.socket(zmq.SUB)
    healthy.setsockopt(zmq.LINGER, 0)
    healthy.setsockopt(zmq.SUBSCRIBE, b"persense/cam0/result")
    healthy.connect(endpoint)
    stuck = StuckSubscriber(endpoint, b"persense/")
    dropped_before = metric(http, 'persense_publish_dropped_total{camera="cam0"}')
    seqs: list[int] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if healthy.poll(200):
            seqs.append(json.loads(healthy.recv_multipart()[1])["seq"])
    gaps = sum(b - a - 1 for a, b in zip(seqs, seqs[1:]) if b > a + 1)
    figures = {"seconds": seconds, "raw_peer_handshake": stuck.handshake_done(), "healthy_received": len(seqs),
               "healthy_seq_gaps": gaps,
               "publish_dropped_delta": metric(http, 'persense_publish_dropped_total{camera="cam0"}') - dropped_before,
               "subscriber_overflows": metric(http, 'persense_publish_subscriber_overflows_total{camera="cam0"}')}
    stuck.close()
    healthy.close()
    return figures


def bad_settings(workdir: Path, code: Path) -> list[dict]:
    cases = [
        ("stream.publish.send_hwm: 1000000000000", "stream: {publish: {send_hwm: 1000000000000}}", []),
        ("--publish tcp://127.0.0.1:99999", None, ["--publish", "tcp://127.0.0.1:99999"]),
        ("rtsp://host:notaport/x", None, ["--source", "rtsp://host:notaport/x"]),
        ("pipeline.max_prompts: 1e9", "pipeline: {max_prompts: 1000000000}", []),
        ("stream.publish.queue_size: 1e9", "stream: {publish: {queue_size: 1000000000}}", []),
    ]
    out = []
    for name, yaml_text, flags in cases:
        extra = []
        if yaml_text:
            path = workdir / "bad.yaml"
            path.write_text(yaml_text)
            extra = ["--config", str(path)]
        ports = ["--metrics-port", "0", "--control", "tcp://127.0.0.1:*"]
        if "--publish" not in flags:
            ports += ["--publish", "tcp://127.0.0.1:*"]
        start = time.perf_counter()
        try:
            done = subprocess.run(PERSENSE + ["run", *extra, *ports, *flags], cwd=code, capture_output=True,
                                  text=True, timeout=30, env={**os.environ, "PYTHONPATH": str(code)})
        except subprocess.TimeoutExpired:
            out.append({"case": name, "exit": None, "message": "accepted: still running after 30 s"})
            continue
        lines = done.stderr.strip().splitlines()
        out.append({"case": name, "exit": done.returncode, "stderr_lines": len(lines),
                    "message": lines[-1] if lines else "", "seconds": round(time.perf_counter() - start, 2)})
    return out


def early_sigterm(workdir: Path, code: Path) -> list[dict]:
    out = []
    for delay in (0.1, 0.2, 0.3, 0.5):
        proc = subprocess.Popen(PERSENSE + ["run", "--publish", "tcp://127.0.0.1:*", "--control", "tcp://127.0.0.1:*",
                                            "--metrics-port", "0", "--cache-dir", str(workdir)],
                                cwd=code, env={**os.environ, "PYTHONPATH": str(code)},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGTERM)
        out.append({"sigterm_after_s": delay, "exit": proc.wait(60)})
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stuck-s", type=float, default=60.0, help="how long the stuck subscriber case runs")
    parser.add_argument("--cases", nargs="+", default=["deep_json", "big_frames", "png_bomb", "stuck", "settings",
                                                        "sigterm", "held_open", "deep_images", "viewers", "uploads",
                                                        "fifo", "sighup"])
    parser.add_argument("--viewers", type=int, default=100, help="live viewers of the viewers case")
    parser.add_argument("--max-viewers", type=int, help="stream.console.max_viewers of the processor (default: its "
                        "own default)")
    parser.add_argument("--code", type=Path, default=ROOT, help="source tree whose processor runs")
    parser.add_argument("--no-overlay", action="store_true", help="publish without JPEG overlays")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="persense-hostile-"))
    pub, ctl, http = free_port(), free_port(), free_port()
    overlay = [] if args.no_overlay else ["--overlay"]
    console = {"token": hostile_http.TOKEN, **({"max_viewers": args.max_viewers} if args.max_viewers else {})}
    (workdir / "console.yaml").write_text(json.dumps({"stream": {"console": console}}))
    proc = subprocess.Popen(PERSENSE + ["-q", "run", "--config", str(workdir / "console.yaml"),
                                        "--publish", f"tcp://127.0.0.1:{pub}",
                                        "--control", f"tcp://127.0.0.1:{ctl}", "--metrics-port", str(http),
                                        "--cache-dir", str(workdir / "cache"), *overlay],
                            cwd=args.code, env={**os.environ, "PYTHONPATH": str(args.code)})
    context = zmq.Context()
    control = f"tcp://127.0.0.1:{ctl}"
    figures: dict = {}
    try:
        if not (request(context, control, [b'{"cmd": "status"}'], 120) or {}).get("ok"):
            raise SystemExit("the processor did not come up")
        figures["rss_at_start_mib"] = round(rss_mib(proc.pid), 1)
        if "stuck" in args.cases:  # first: the other cases may leave the control thread dead on old code
            figures["stuck_subscriber"] = stuck_subscriber(context, f"tcp://127.0.0.1:{pub}", http, args.stuck_s)
        if "deep_json" in args.cases:
            reply = request(context, control, [b"[" * 1000 + b"]" * 1000], 10)
            status = request(context, control, [b'{"cmd": "status"}'], 10)
            figures["deep_json"] = {"reply": reply, "status_after": (status or {}).get("ok"),
                                    "healthz_after": healthz(http)}
        if "big_frames" in args.cases:
            figures["big_frames"] = [big_frame(context, control, mib, proc.pid) for mib in (140, 200)]
        if "png_bomb" in args.cases:
            bomb = png_bomb(30_000, 30_000)
            before = peak_rss_mib(proc.pid)
            start = time.perf_counter()
            reply = request(context, control, [b'{"cmd": "set_support"}', bomb, bomb], 300)
            figures["png_bomb"] = {"bytes": len(bomb), "seconds": round(time.perf_counter() - start, 3),
                                   "reply": reply, "processor_peak_rss_mib_before": round(before, 1),
                                   "processor_peak_rss_mib_after": round(peak_rss_mib(proc.pid), 1)}
        if "deep_images" in args.cases:
            figures["deep_images"] = hostile_http.deep_images(context, control, proc.pid, request)
        if "held_open" in args.cases:
            figures["held_open"] = hostile_http.held_open(http)
            figures["held_open_reconnecting"] = hostile_http.held_open(http, seconds=10, reconnect=True)
        if "viewers" in args.cases:
            figures["viewers"] = hostile_http.viewers(context, f"tcp://127.0.0.1:{pub}", http, proc.pid, args.viewers)
        if "uploads" in args.cases:  # last: it replaces the support
            figures["parallel_uploads"] = hostile_http.parallel_uploads(http, proc.pid)
        figures["alive_after"] = proc.poll() is None and healthz(http) == 200
    finally:
        context.term()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        figures["exit_after_sigterm"] = proc.wait(60)
    if "settings" in args.cases:
        figures["bad_settings"] = bad_settings(workdir, args.code)
    if "sigterm" in args.cases:
        figures["early_sigterm"] = early_sigterm(workdir, args.code)
    if "fifo" in args.cases:
        figures["special_files"] = hostile_procs.special_files(args.code, PERSENSE)
    if "sighup" in args.cases:
        figures["sighup"] = hostile_procs.sighup(args.code, PERSENSE, free_port())
    shutil.rmtree(workdir, ignore_errors=True)
    text = json.dumps(figures, indent=2, default=str)
    print(text)
    if args.json:
        args.json.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
