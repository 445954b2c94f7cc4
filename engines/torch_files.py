"""Reading PyTorch checkpoint files: one short reason for the many ways torch.load can fail."""

from __future__ import annotations

import pickle
import re
import zipfile

from streamer.errors import first_line


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
