"""manifest.json of an exported SAM model directory: what was exported, how, and the files' checksums."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engines.errors import EngineError

FORMAT = "persense.sam/1"
MANIFEST = "manifest.json"


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class SamManifest:
    model_type: str
    input_size: int
    pixel_mean: list[float]
    pixel_std: list[float]
    embed_dim: int
    opset: int
    files: dict[str, dict[str, Any]]  # file name -> {"sha256", "bytes"}
    versions: dict[str, str] = field(default_factory=dict)
    checkpoint: dict[str, Any] = field(default_factory=dict)
    engines: dict[str, str] = field(default_factory=dict)  # TensorRT: role -> engine file name
    format: str = FORMAT
    checksum: str = ""  # sha256 of manifest.json itself, set when read

    def to_json(self) -> str:
        data = {k: v for k, v in self.__dict__.items() if k != "checksum"}
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    def onnx_sha256(self, onnx_name: str) -> str:
        """The checksum TensorRT engines of `onnx_name` are named by: its sha256, combined with that of its
        external data file where there is one (`engines.trt.onnx_digest`)."""
        from engines.trt import onnx_digest

        names = [n for n in (onnx_name, onnx_name + ".data") if n in self.files]
        return onnx_digest([str(self.files[n].get("sha256", "")) for n in names])

    def write(self, model_dir: Path) -> Path:
        path = Path(model_dir) / MANIFEST
        path.write_text(self.to_json())
        return path


def read_manifest(model_dir: Path | str, expect_type: str | None = None, verify: bool = False) -> SamManifest:
    """Read and check a model directory's manifest.

    Checks that every listed file exists with its recorded size (cheap: ViT-H's weights are 2.5 GB);
    `verify=True` also compares sha256 checksums. Raises EngineError with one line on any problem.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise EngineError(f"SAM model directory not found: {model_dir} (create it with `persense export sam`)")
    path = model_dir / MANIFEST
    if not path.is_file():
        raise EngineError(f"{model_dir} has no {MANIFEST}: not a directory written by `persense export sam`")
    raw = path.read_bytes()
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EngineError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else None
        raise EngineError(f"{path} is not a SAM manifest (format {found!r}, expected {FORMAT!r})")
    try:
        manifest = SamManifest(**data)
    except TypeError as exc:
        raise EngineError(f"{path}: malformed manifest ({exc})") from None
    manifest.checksum = hashlib.sha256(raw).hexdigest()
    if expect_type is not None and manifest.model_type != expect_type:
        raise EngineError(f"{model_dir} holds a {manifest.model_type} model, not {expect_type}")
    for name, info in manifest.files.items():
        file = model_dir / name
        if not file.is_file():
            raise EngineError(f"{model_dir}: {name} is missing (re-run `persense export sam`)")
        if file.stat().st_size != info.get("bytes"):
            raise EngineError(f"{model_dir}: {name} has the wrong size, so it is corrupt or from another export")
        if verify and sha256_file(file) != info.get("sha256"):
            raise EngineError(f"{model_dir}: {name} fails its checksum, so it is corrupt or from another export")
    return manifest


def file_entry(path: Path) -> dict[str, Any]:
    return {"sha256": sha256_file(path), "bytes": path.stat().st_size}
