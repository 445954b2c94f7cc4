"""Start and stop the real peers the source tests talk to: an RTSP server and a fake GigE Vision camera.

Each peer is a subprocess of the test; `stop()` kills it and is safe to call twice, so fixtures can always
clean up in `finally`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PEERS = Path(__file__).resolve().parent
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's python3-gi with the GStreamer typelibs
FAKE_GV_CAMERA = "arv-fake-gv-camera-0.8"
GVCP_PORT = 3956


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rtsp_server_missing() -> str | None:
    """Why the RTSP server cannot run here, or None."""
    if not os.path.exists(SYSTEM_PYTHON):
        return f"{SYSTEM_PYTHON} not found"
    probe = (
        "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0');"
        "from gi.repository import Gst, GstRtspServer; Gst.init(None);"
        "missing = [e for e in ('videotestsrc', 'x264enc', 'rtph264pay', 'videoconvert')"
        " if Gst.ElementFactory.find(e) is None]; print(','.join(missing))"
    )
    try:
        result = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"system python cannot probe GStreamer: {exc}"
    if result.returncode != 0:
        return ("gst-rtsp-server is not importable by the system python (apt install python3-gi "
                "gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp)")
    if result.stdout.strip():
        return (f"GStreamer elements missing: {result.stdout.strip()} "
                "(apt install gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly)")
    return None


class Peer:
    """A subprocess with kill-on-stop."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        # Output goes to a file, not a pipe: nobody reads a pipe during the test, and a full one blocks the peer.
        # Append mode and pread: the child's writes and our reads never move each other's file offset.
        self._log = tempfile.TemporaryFile("a+b")

    def _spawn(self, cmd: list[str]) -> None:
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def output(self) -> str:
        fd = self._log.fileno()
        return os.pread(fd, os.fstat(fd).st_size, 0).decode(errors="replace")

    def stop(self, sig: int = signal.SIGKILL) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)  # a paused peer cannot act on SIGTERM
            proc.send_signal(sig)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def pause(self) -> None:
        """SIGSTOP: the process keeps its sockets but answers nothing (a hung camera)."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)


class RtspServer(Peer):
    """tests/peers/rtsp_server.py on 127.0.0.1:port; `url` is rtsp://127.0.0.1:port/test."""

    def __init__(self, port: int | None = None, *args: str) -> None:
        super().__init__()
        self.port = port or free_port()
        self.args = list(args)
        self.url = f"rtsp://127.0.0.1:{self.port}/test"

    def start(self, timeout: float = 20.0) -> "RtspServer":
        cmd = [SYSTEM_PYTHON, str(PEERS / "rtsp_server.py"), "--port", str(self.port), *self.args]
        deadline = time.monotonic() + timeout
        while True:
            start = len(self.output)
            self._spawn(cmd)
            while self.proc.poll() is None and "READY" not in self.output[start:]:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            if "READY" in self.output[start:]:
                return self
            self.stop()
            if time.monotonic() > deadline:
                raise RuntimeError(f"RTSP server did not start: {self.output[start:].strip()}")
            # Restarting on the same port right after a kill: the port may linger for a moment.
            time.sleep(0.2)


def gvcp_discover(host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """True if a GigE Vision device answers a GVCP discovery command on host:3956."""
    # GVCP header: key 0x42, flags 0x11 (ack required, broadcast ack allowed), DISCOVERY_CMD 0x0002, length 0, id.
    packet = struct.pack(">BBHHH", 0x42, 0x11, 0x0002, 0, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(packet, (host, GVCP_PORT))
            data, _ = sock.recvfrom(2048)
        except OSError:
            return False
    return len(data) >= 8 and struct.unpack(">H", data[2:4])[0] == 0x0003  # DISCOVERY_ACK


class FakeGigECamera(Peer):
    """arv-fake-gv-camera-0.8 bound to 127.0.0.1 (GVCP port 3956, so one at a time per host)."""

    def __init__(self, serial: str = "PSTEST01") -> None:
        super().__init__()
        self.serial = serial

    @staticmethod
    def missing() -> str | None:
        if shutil.which(FAKE_GV_CAMERA) is None:
            return f"{FAKE_GV_CAMERA} not found (apt install aravis-tools)"
        return None

    def start(self, timeout: float = 10.0) -> "FakeGigECamera":
        if gvcp_discover():
            raise RuntimeError("another GigE Vision device already answers on 127.0.0.1:3956")
        self._spawn([FAKE_GV_CAMERA, "-i", "127.0.0.1", "-s", self.serial])
        deadline = time.monotonic() + timeout
        while not gvcp_discover():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"fake GigE camera did not start: {self.output.strip()}")
        return self


def main() -> int:
    """python tests/peers/procs.py rtsp|gige: run one peer in the foreground (for trying things by hand)."""
    kind = sys.argv[1] if len(sys.argv) > 1 else "rtsp"
    peer = RtspServer(8554).start() if kind == "rtsp" else FakeGigECamera().start()
    print(getattr(peer, "url", "gige:127.0.0.1"), flush=True)
    try:
        peer.proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        peer.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
