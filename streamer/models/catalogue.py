"""The model catalogue: every checkpoint the project runs, with its publisher's download address, size, licence and
checksum, and where each figure comes from.

Checksums: neither Meta (SAM) nor the CounTR authors publish one. A figure the publisher does not state is None
here; the cache then records the SHA-256 the first download computes (`sha256_origin: "first download"`) and checks
every later copy (`--from`, a re-fetch) against it. Sizes are the HTTP Content-Length the publisher's server sends,
as recorded in independent download logs (cited per entry); a download whose size differs is refused.

Tests (and mirrors) replace the catalogue with a JSON file: `PERSENSE_CATALOGUE=FILE` or `--catalogue FILE`, a list
of objects with the ModelEntry fields.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal, Optional

from streamer.errors import UserError

CATALOGUE_ENV = "PERSENSE_CATALOGUE"
# Bound on a catalogue override file: it is a short list of entries, never megabytes.
MAX_CATALOGUE_BYTES = 1 << 20

SAM_LICENCE = "Apache-2.0"
SAM_LICENCE_URL = "https://github.com/facebookresearch/segment-anything/blob/main/LICENSE"
SAM_PAGE = "https://github.com/facebookresearch/segment-anything#model-checkpoints"
SAM_SIZE_SOURCE = (
    "Content-Length of dl.fbaipublicfiles.com (not stated in the SAM README), as recorded by independent download "
    "scripts and logs"
)
SAM_CHECKSUM_SOURCE = (
    "none in the SAM README; the SHA-256 of the first download is recorded in the cache"
)
COUNTR_DRIVE_ID = "1CzYyiYqLshMdqJ9ZPFJyIzXBa7uFUIYZ"


@dataclass(frozen=True)
class ModelEntry:
    """One downloadable checkpoint.

    kind + architecture say how `setup` exports it: kind "sam" with a segment-anything model type (vit_b, vit_l,
    vit_h; "tiny" in tests), kind "countr" with "fsc147" (the published model; "tiny" in tests).
    `url` is fetched; `page` is where a person finds it (the publisher's README).
    """

    name: str
    kind: Literal["sam", "countr"]
    architecture: str
    filename: str
    url: str
    page: str
    licence: str
    licence_url: str
    size: Optional[int] = None
    sha256: Optional[str] = None
    size_source: str = ""
    checksum_source: str = ""
    description: str = ""
    # Set where the host may answer a script with a web page instead of the file (Google Drive): what to do then.
    manual_hint: str = ""

    @property
    def size_text(self) -> str:
        return human_size(self.size) if self.size else "unknown"


def _sam(variant: str, suffix: str, size: int, description: str) -> ModelEntry:
    filename = f"sam_vit_{variant}_{suffix}.pth"
    return ModelEntry(
        name=f"sam-vit-{variant}",
        kind="sam",
        architecture=f"vit_{variant}",
        filename=filename,
        url=f"https://dl.fbaipublicfiles.com/segment_anything/{filename}",
        page=SAM_PAGE,
        licence=SAM_LICENCE,
        licence_url=SAM_LICENCE_URL,
        size=size,
        size_source=SAM_SIZE_SOURCE,
        checksum_source=SAM_CHECKSUM_SOURCE,
        description=description,
    )


OFFICIAL: tuple[ModelEntry, ...] = (
    # Addresses: facebookresearch/segment-anything README, "Model Checkpoints".
    _sam("b", "01ec64", 375_042_383, "Segment Anything ViT-B (91M parameters): the fastest; the paper's choice"),
    _sam("l", "0b3195", 1_249_524_607, "Segment Anything ViT-L (308M parameters)"),
    _sam("h", "4b8939", 2_564_550_879, "Segment Anything ViT-H (636M parameters): the most accurate, slowest"),
    ModelEntry(
        name="countr-fsc147",
        kind="countr",
        architecture="fsc147",
        filename="FSC147.pth",
        # Google Drive's direct-download form of the README's link (the confirmation step skipped for large files).
        url=f"https://drive.usercontent.google.com/download?id={COUNTR_DRIVE_ID}&export=download&confirm=t",
        page=f"https://drive.google.com/file/d/{COUNTR_DRIVE_ID}/view?usp=sharing",
        licence="MIT",
        licence_url="https://github.com/Verg-Avesta/CounTR/blob/main/LICENSE",
        size_source="not published (Verg-Avesta/CounTR README, 'Fine-tuned weights', links the Google Drive file "
        "only); the first download's size is recorded in the cache",
        checksum_source="not published; the SHA-256 of the first download is recorded in the cache",
        description="CounTR fine-tuned on FSC-147 (MAE 11.95 on the test set): the paper's density map generator",
        manual_hint="Google Drive may answer scripts with a web page: open the address in a browser, save "
        "FSC147.pth, then `persense models fetch countr-fsc147 --from FSC147.pth`",
    ),
)


def human_size(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


class Catalogue:
    """Entries by name, in catalogue order."""

    def __init__(self, entries: tuple[ModelEntry, ...] | list[ModelEntry]) -> None:
        self.entries = {e.name: e for e in entries}

    def __iter__(self):
        return iter(self.entries.values())

    def get(self, name: str) -> ModelEntry:
        """The entry called `name`; UserError listing the known names otherwise."""
        if name not in self.entries:
            raise UserError(f"unknown model {name!r} (known: {', '.join(self.entries)})")
        return self.entries[name]


def load_catalogue(path: Path | str | None = None) -> Catalogue:
    """The official catalogue, or the JSON override at `path` (else $PERSENSE_CATALOGUE) when one is given."""
    path = path or os.environ.get(CATALOGUE_ENV)
    if not path:
        return Catalogue(OFFICIAL)
    path = Path(path)
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_CATALOGUE_BYTES + 1)
    except OSError as exc:
        raise UserError(f"cannot read catalogue {path}: {exc.strerror}") from None
    if len(raw) > MAX_CATALOGUE_BYTES:
        raise UserError(f"catalogue {path} is larger than {MAX_CATALOGUE_BYTES} bytes")
    try:
        items = json.loads(raw)
        known = {f.name for f in fields(ModelEntry)}
        if not isinstance(items, list) or not all(isinstance(i, dict) and set(i) <= known for i in items):
            raise ValueError(f"expected a list of objects with the fields {', '.join(sorted(known))}")
        entries = [ModelEntry(**item) for item in items]
    except (ValueError, TypeError) as exc:
        raise UserError(f"catalogue {path}: {exc}") from None
    return Catalogue(entries)
