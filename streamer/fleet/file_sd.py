"""Prometheus file-based service discovery: the workers' /metrics, wherever Ray put them.

The file is what `file_sd_configs` reads: a JSON list of {"targets": ["HOST:PORT"], "labels": {...}}. It is
rewritten (write, then rename, so Prometheus never reads half a file) only when the targets change.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)


def targets(cameras: dict[str, dict]) -> list[dict]:
    """camera -> fleet status (with "metrics": "HOST:PORT" or None, "node") -> file_sd groups, by camera id."""
    groups = []
    for camera, status in sorted(cameras.items()):
        if status.get("metrics"):
            groups.append({"targets": [status["metrics"]],
                           "labels": {"job": "persense", "camera": camera, "node": status.get("node") or ""}})
    return groups


class FileSD:
    """Keeps `path` holding the current targets."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._written: list[dict] | None = None

    def update(self, groups: list[dict]) -> bool:
        """Write `groups` if they differ from what the file holds -> whether it was written."""
        if groups == self._written:
            return False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".file_sd-", suffix=".json")
            with os.fdopen(fd, "w") as fh:
                json.dump(groups, fh, indent=1)
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("cannot write the Prometheus targets %s: %s", self.path, exc.strerror or exc)
            return False
        self._written = groups
        return True
