"""Reading PyTorch checkpoint files: the path checked first, and one short reason for the many ways
torch.load can fail."""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path

from engines.errors import EngineError, first_line


def checkpoint_file(path: Path | str, what: str = "checkpoint") -> Path:
    """The path of an existing checkpoint file, or an EngineError naming what is wrong with it."""
    path = Path(path)
    if path.is_dir():
        raise EngineError(f"{what} {path} is a directory, not a checkpoint file")
    if not path.is_file():
        raise EngineError(f"{what} not found: {path}")
    return path


def load_problem(exc: Exception) -> str:
    """torch.load's exception (often several paragraphs) -> a short reason for one error line."""
    text = str(exc)
    blocked = re.search(r"unsupported GLOBAL (\S+) whose module \S+ is blocked", text)
    if blocked:
        return f"it refers to {blocked.group(1)}, which torch refuses to load (a tampered file?)"
    # A text or truncated file fails inside the unpickler in assorted ways (KeyError on a byte, EOF, bad zip).
    if (
        "Weights only load failed" in text
        or isinstance(exc, (pickle.UnpicklingError, EOFError, KeyError, zipfile.BadZipFile))
        or "zip archive" in text
    ):
        return "not a PyTorch checkpoint, or corrupt"
    return first_line(exc)[:200]
