"""Reading files named from outside without ever blocking on them: only regular files are read.

A FIFO, a device or a socket given as an image, a support or a model file would block `open()` or `read()`
for ever (a FIFO with no writer) or stream without end (/dev/zero), and every later input would wait behind
it. The file is opened non-blocking (opening a FIFO then returns at once) and checked with fstat on the
open descriptor, so a path swapped between a check and the read cannot slip through.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from streamer.errors import UserError


def not_regular(path: Path | str, what: str) -> UserError:
    return UserError(f"{what} {path} is not a regular file")


def open_regular(path: Path | str, what: str) -> int:
    """-> a blocking read-only descriptor of `path`, a regular file; UserError (one line naming `what` and the
    cause) for a missing file, a directory, a FIFO, a device or a socket. The caller closes the descriptor."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except IsADirectoryError:
        raise UserError(f"{what} is a directory, not a file: {path}") from None
    except FileNotFoundError:
        raise UserError(f"{what} not found: {path}") from None
    except OSError as exc:
        # e.g. ENXIO: a socket, or a device without a driver.
        if os.path.exists(path) and not os.path.isfile(path) and not os.path.isdir(path):
            raise not_regular(path, what) from None
        raise UserError(f"cannot read {what} {path}: {exc.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise UserError(f"{what} is a directory, not a file: {path}")
        if not stat.S_ISREG(mode):
            raise not_regular(path, what)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(path: Path | str, what: str, max_bytes: int) -> bytes:
    """The whole content of the regular file `path`, refused (UserError) beyond `max_bytes` before it is read."""
    fd = open_regular(path, what)
    with os.fdopen(fd, "rb") as f:
        try:
            size = os.fstat(fd).st_size
            if size > max_bytes:
                raise UserError(f"{what} {path} has {size} bytes; the limit is {max_bytes}")
            data = f.read(max_bytes + 1)
        except OSError as exc:
            raise UserError(f"cannot read {what} {path}: {exc.strerror}") from None
    if len(data) > max_bytes:  # the file grew while it was read
        raise UserError(f"{what} {path} has more than {max_bytes} bytes; the limit is {max_bytes}")
    return data


def check_regular(path: Path | str, what: str) -> None:
    """UserError unless `path` is a regular file (for readers that open it themselves, e.g. OpenCV's video
    capture or shutil): opens and closes it the safe way."""
    os.close(open_regular(path, what))
