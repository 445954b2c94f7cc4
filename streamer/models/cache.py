"""The checkpoint cache: CACHE/NAME/FILENAME (complete and verified, or absent), CACHE/NAME/FILENAME.partial (a
transfer to resume) and CACHE/NAME/download.json (what was verified, and the SHA-256 recorded at the first download
where the publisher states none).

A checkpoint appears under its final name only by an atomic rename after verification, so a file under that name
is always complete.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from engines.sam.manifest import sha256_file
from streamer.errors import UserError
from streamer.models.catalogue import ModelEntry

CACHE_ENV = "PERSENSE_MODELS"
METADATA_NAME = "download.json"
MAX_METADATA_BYTES = 64 * 1024


def default_cache_dir() -> Path:
    """$PERSENSE_MODELS, else $XDG_CACHE_HOME/persense/models, else ~/.cache/persense/models."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "persense" / "models"


@dataclass(frozen=True)
class CachedModel:
    """Where one catalogue entry lives in the cache."""

    entry: ModelEntry
    root: Path

    @property
    def folder(self) -> Path:
        return self.root / self.entry.name

    @property
    def path(self) -> Path:
        return self.folder / self.entry.filename

    @property
    def partial(self) -> Path:
        return self.folder / (self.entry.filename + ".partial")

    @property
    def metadata_path(self) -> Path:
        return self.folder / METADATA_NAME

    def metadata(self) -> dict[str, Any]:
        """The recorded metadata ({} when none or unreadable: then nothing is trusted from it)."""
        try:
            with self.metadata_path.open("rb") as f:
                data = json.loads(f.read(MAX_METADATA_BYTES))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def expected_sha256(self) -> Optional[str]:
        """The publisher's checksum, else the one recorded at the first download, else None."""
        recorded = self.metadata().get("sha256")
        return self.entry.sha256 or (recorded if isinstance(recorded, str) else None)

    def expected_size(self) -> Optional[int]:
        recorded = self.metadata().get("size")
        return self.entry.size or (recorded if isinstance(recorded, int) else None)

    def installed(self) -> bool:
        """Complete under its final name with the size it should have (the checksum was verified on arrival)."""
        if not self.path.is_file():
            return False
        size = self.expected_size()
        return size is None or self.path.stat().st_size == size

    def prepare_folder(self) -> None:
        """Create the folder; UserError (one line) when the cache cannot be written."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            probe = tempfile.NamedTemporaryFile(dir=self.folder, prefix=".write-test-")
            probe.close()
        except OSError as exc:
            raise UserError(f"model cache {self.root} is not writable ({exc.strerror}): choose another with "
                            f"--cache-dir DIR or ${CACHE_ENV}") from None

    def verify(self, file: Path, what: str) -> str:
        """Check `file`'s size and checksum against what is expected; -> its SHA-256. UserError when it differs."""
        size = file.stat().st_size
        expected_size = self.expected_size()
        if expected_size is not None and size != expected_size:
            raise UserError(f"{what} is {size} bytes, but {self.entry.name} is {expected_size} bytes: it is "
                            "truncated or another file")
        digest = sha256_file(file)
        expected = self.expected_sha256()
        if expected is not None and digest != expected:
            origin = "published" if self.entry.sha256 else f"recorded at the first download in {self.folder}"
            raise UserError(f"{what} fails its checksum (SHA-256 {digest[:12]}..., {origin} "
                            f"{expected[:12]}...): it is corrupt or another file")
        # Where no checksum is known yet, at least the format: torch.save writes zip archives.
        if not zipfile.is_zipfile(file):
            raise UserError(f"{what} is not a PyTorch checkpoint (not a zip archive)")
        return digest

    def install(self, verified: Path, sha256: str, source: str) -> Path:
        """Record the metadata, then move the verified file under its final name (atomic rename)."""
        previous = self.metadata()
        if self.entry.sha256:
            origin = "publisher"
        elif "sha256" in previous:
            origin = previous.get("sha256_origin", "first download")
        else:
            origin = "first download"
        metadata = {
            "name": self.entry.name,
            "filename": self.entry.filename,
            "url": self.entry.url,
            "source": source,
            "size": verified.stat().st_size,
            "sha256": sha256,
            "sha256_origin": origin,
            "licence": self.entry.licence,
        }
        write_atomic(self.metadata_path, json.dumps(metadata, indent=2).encode())
        os.replace(verified, self.path)
        return self.path


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, flush it to disk, then rename it over `path`."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
