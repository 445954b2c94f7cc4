"""Evaluation on the PerSense-D layout: the paper's class-wise IoU, count MAE and density buckets.

Layout: DIR/Images/<class>/00.jpg + 00.png is the class's support (image + mask); every other NN.jpg with
NN.png is a query with its ground-truth union mask. A ground-truth count, where known, comes from a sidecar:
NN.json ({"count": n} or {"points": [[x, y], ...]}) or NN.txt (one "x y" dot per line, or a single integer).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from streamer.errors import UserError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
# The paper's density levels (Sec. 4): low <= 30 < medium <= 60 < high.
BUCKETS = (("low", 0, 30), ("medium", 30, 60), ("high", 60, float("inf")))


@dataclass
class QueryItem:
    image: Path
    mask: Path
    count_file: Path | None


@dataclass
class ClassItems:
    name: str
    support_image: Path
    support_mask: Path
    queries: list[QueryItem]


def _image_with_stem(folder: Path, stem: str, exclude_suffix: str | None = None) -> Path | None:
    for suffix in IMAGE_SUFFIXES:
        candidate = folder / f"{stem}{suffix}"
        if candidate.exists() and suffix != exclude_suffix:
            return candidate
    return None


def discover(root: Path) -> list[ClassItems]:
    """Walk DIR/Images/<class>/ (or DIR/<class>/ when there is no Images folder)."""
    base = root / "Images" if (root / "Images").is_dir() else root
    if not base.is_dir():
        raise UserError(f"evaluation data not found: {root}")
    classes = []
    for folder in sorted(p for p in base.iterdir() if p.is_dir()):
        support_image = _image_with_stem(folder, "00", exclude_suffix=".png") or None
        support_mask = folder / "00.png"
        if support_image is None or not support_mask.exists():
            log.warning("skipping %s: no 00.jpg + 00.png support pair", folder.name)
            continue
        queries = []
        for image in sorted(folder.iterdir()):
            if image.suffix.lower() not in IMAGE_SUFFIXES or image.suffix.lower() == ".png" or image.stem == "00":
                continue
            mask = folder / f"{image.stem}.png"
            if not mask.exists():
                log.warning("skipping %s: no ground-truth mask %s", image, mask.name)
                continue
            count_file = next((folder / f"{image.stem}{s}" for s in (".json", ".txt") if (folder / f"{image.stem}{s}").exists()), None)
            queries.append(QueryItem(image, mask, count_file))
        classes.append(ClassItems(folder.name, support_image, support_mask, queries))
    if not classes:
        raise UserError(f"no class folders with a 00 support pair under {base}")
    return classes


def read_count(path: Path | None) -> int | None:
    """A ground-truth count from a .json or .txt sidecar, or None."""
    if path is None:
        return None
    try:
        text = path.read_text().strip()
        if path.suffix == ".json":
            data = json.loads(text)
            if isinstance(data, dict) and "count" in data:
                return int(data["count"])
            points = data.get("points", []) if isinstance(data, dict) else data
            return len(points)
        lines = [line for line in text.splitlines() if line.strip()]
        if len(lines) == 1 and len(lines[0].split()) == 1:
            return int(float(lines[0]))
        return len(lines)
    except (OSError, ValueError, json.JSONDecodeError) as exc:
        raise UserError(f"cannot read ground-truth count {path}: {exc}") from None


def bucket_of(count: int) -> str:
    return next(name for name, lo, hi in BUCKETS if lo < count <= hi or (lo == 0 and count <= hi))


@dataclass
class ImageScore:
    klass: str
    image: str
    intersection: int
    union: int
    predicted_count: int
    true_count: int | None

    @property
    def iou(self) -> float:
        return self.intersection / self.union if self.union else 1.0


@dataclass
class Report:
    images: list[ImageScore] = field(default_factory=list)

    def add(self, klass: str, image: str, predicted: np.ndarray, truth: np.ndarray, count: int, true_count: int | None):
        inter = int(np.count_nonzero(predicted & truth))
        union = int(np.count_nonzero(predicted | truth))
        self.images.append(ImageScore(klass, image, inter, union, count, true_count))

    def class_iou(self) -> dict[str, float]:
        """Per class: intersections and unions summed over its images, then divided (the paper's class-wise IoU)."""
        sums: dict[str, list[int]] = {}
        for item in self.images:
            acc = sums.setdefault(item.klass, [0, 0])
            acc[0] += item.intersection
            acc[1] += item.union
        return {k: (i / u if u else 1.0) for k, (i, u) in sums.items()}

    def summary(self) -> dict:
        per_class = self.class_iou()
        counted = [s for s in self.images if s.true_count is not None]
        out = {
            "images": len(self.images),
            "classes": len(per_class),
            "class_wise_miou": float(np.mean(list(per_class.values()))) if per_class else None,
            "class_iou": per_class,
            "count_mae": float(np.mean([abs(s.predicted_count - s.true_count) for s in counted])) if counted else None,
            "images_with_counts": len(counted),
        }
        if counted:
            buckets = {}
            for name, _, _ in BUCKETS:
                members = [s for s in counted if bucket_of(s.true_count) == name]
                if members:
                    buckets[name] = {
                        "images": len(members),
                        "miou": float(np.mean([s.iou for s in members])),
                        "count_mae": float(np.mean([abs(s.predicted_count - s.true_count) for s in members])),
                    }
            out["density_buckets"] = buckets
        return out
