"""A hostile subscriber written on a raw TCP socket: it completes the ZMTP 3.0 handshake (NULL security) as
a SUB socket, subscribes to a topic prefix, and then never reads another byte.

Unlike a ZeroMQ SUB socket with a small receive high-water mark (whose I/O thread still reads), this peer
leaves everything in the kernel's buffers, which is what a hung dashboard or a frozen client does.
"""

from __future__ import annotations

import socket
import struct

# ZMTP 3.0 greeting: signature, version 3.0, mechanism NULL (20 bytes, zero padded), as-server 0, filler.
_GREETING = b"\xff" + b"\0" * 8 + b"\x7f" + b"\x03\x00" + b"NULL".ljust(20, b"\0") + b"\0" + b"\0" * 31


def _command(name: bytes, properties: dict[bytes, bytes]) -> bytes:
    body = bytes([len(name)]) + name
    for key, value in properties.items():
        body += bytes([len(key)]) + key + struct.pack(">I", len(value)) + value
    return bytes([0x04, len(body)]) + body  # a short command frame


def _message(body: bytes) -> bytes:
    return bytes([0x00, len(body)]) + body  # a short, final message frame


class StuckSubscriber:
    """Connects to a tcp:// publish endpoint, subscribes to `topic`, and never reads.

    Args:
        receive_buffer: SO_RCVBUF in bytes, small so that the publisher's side fills quickly.
    """

    def __init__(self, endpoint: str, topic: bytes = b"persense/", receive_buffer: int = 4096):
        host, port = endpoint[len("tcp://"):].rsplit(":", 1)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(10.0)
        self.sock.connect((host, int(port)))
        self.sock.sendall(_GREETING)
        self.sock.sendall(_command(b"READY", {b"Socket-Type": b"SUB"}))
        # The publisher's greeting and READY must be read before anything else is sent: a message arriving
        # while ZeroMQ still handshakes is a protocol error that closes the connection.
        self.greeting = self._read_exactly(64)
        ready_size = self._read_exactly(2)
        self.ready = self._read_exactly(ready_size[1]) if len(ready_size) == 2 else b""
        self.sock.sendall(_message(b"\x01" + topic))  # ZMTP 3.0: a subscription is a message starting 0x01

    def _read_exactly(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                break
            data += chunk
        return data

    def handshake_done(self) -> bool:
        """True when the publisher's greeting and READY command arrived."""
        return len(self.greeting) == 64 and self.ready.startswith(b"\x05READY")

    def close(self) -> None:
        self.sock.close()
