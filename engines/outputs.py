"""Output directories: checked before any model loads or frame runs."""

from __future__ import annotations

import os
from pathlib import Path

from engines.errors import UserError


def check_output_dir(path: Path) -> Path:
    """Fail early, before any model loads or frame runs, if `path` cannot become an output directory.

    Nothing is created: a command that fails later leaves no empty directory behind.
    """
    if path.exists() and not path.is_dir():
        raise UserError(f"output directory {path} is a file")
    ancestor = path
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        raise UserError(f"cannot create output directory {path}: {ancestor} is not a writable directory")
    return path


def make_output_dir(path: Path) -> Path:
    """Create the output directory `path` (and its parents); UserError with one line when it cannot be."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create output directory {path}: {exc.strerror}") from None
    return path
