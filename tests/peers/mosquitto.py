"""Debian's mosquitto broker as a real peer for the MQTT output's tests: started, killed and restarted by a test.

It binds 127.0.0.1 on a port the test chose, keeps its state in the test's folder (persistence saved after
every change, so that a broker killed with SIGKILL comes back knowing a subscriber's session and its queued
messages), and optionally asks for a password file made with mosquitto_passwd.
"""

from __future__ import annotations

import getpass
import shutil
import signal
import socket
import subprocess
from pathlib import Path

from tests.waiting import wait_until

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


class Mosquitto:
    def __init__(self, folder: Path, port: int, users: dict[str, str] | None = None,
                 tls: tuple[int, Path, Path] | None = None):
        """tls: (port, certificate, key): a second listener with TLS (PEM files) beside the plain one."""
        self.folder, self.port = folder, port
        self.proc: subprocess.Popen | None = None
        lines = [f"listener {port} 127.0.0.1", "persistence true", f"persistence_location {folder}/",
                 "autosave_on_changes true", "autosave_interval 1", "max_queued_messages 0", "log_dest stderr",
                 # Run as root, mosquitto would become the user `mosquitto`, who cannot read the test's folder.
                 f"user {getpass.getuser()}"]
        if users:
            passwords = folder / "passwords"
            passwords.write_text("")
            for user, password in users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(passwords), user, password], check=True,
                               capture_output=True)
            lines += [f"password_file {passwords}", "allow_anonymous false"]
        else:
            lines.append("allow_anonymous true")
        if tls is not None:
            tls_port, certificate, key = tls
            lines += [f"listener {tls_port} 127.0.0.1", f"certfile {certificate}", f"keyfile {key}"]
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")

    def start(self) -> "Mosquitto":
        log = self.folder / "mosquitto.log"
        with open(log, "ab") as sink:  # a file, not a pipe: a broker that logs much must never block on it
            self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=sink, stderr=sink)
        wait_until(lambda: self._listening() or self.proc.poll() is not None, timeout=10)
        if self.proc.poll() is not None or not self._listening():
            self.stop()
            raise RuntimeError(f"mosquitto did not start listening: {log.read_text()[-500:]}")
        return self

    def _listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: the broker vanishes without a goodbye to its clients."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def __enter__(self) -> "Mosquitto":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
