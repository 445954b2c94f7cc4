"""The support set of a running processor: where it comes from, and its prototype cached on disk.

The prototype costs one encoder pass on the support image (seconds for SAM ViT-H on a CPU); it is cached
under the cache directory keyed by the engine set's name and the support's content hash, so a restart
with the same models and support starts at once.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from streamer.errors import UserError
from streamer.imageio import DEFAULT_MAX_PIXELS, decode_image_bytes, mask_from_raw, read_image, read_mask, to_rgb8
from streamer.persense.pipeline import PerSense, Support, support_id_for
from streamer.persense.presence import MatchCalibration

log = logging.getLogger(__name__)


class PrototypeCache:
    """Prototypes on disk: <dir>/<engines name>-<support id>.npz holding `prototype` float32[C] and
    `calibration` float64[2] (the support's self-similarity and floor, see streamer.persense.presence), and where
    the support has one, its class `label` with the `labeler` that named it (the CLE runs once per support)."""

    def __init__(self, directory: Path | None):
        self.directory = directory

    def _path(self, engines_name: str, support_id: str) -> Path | None:
        if self.directory is None:
            return None
        slug = re.sub(r"[^A-Za-z0-9_.+-]", "_", engines_name)[:80]
        return self.directory / f"{slug}-{support_id}.npz"

    def load(self, engines_name: str, support_id: str) -> tuple[np.ndarray, MatchCalibration] | None:
        """The cached prototype and calibration, or None."""
        found = self.load_entry(engines_name, support_id)
        return None if found is None else found[:2]

    def load_label(self, engines_name: str, support_id: str, labeler: str) -> str | None:
        """The label cached for this support when `labeler` named it, else None."""
        found = self.load_entry(engines_name, support_id)
        if found is None or found[3] != labeler:
            return None
        return found[2]

    def load_entry(
        self, engines_name: str, support_id: str
    ) -> tuple[np.ndarray, MatchCalibration, str | None, str | None] | None:
        """(prototype, calibration, label, labeler) from the cache, or None."""
        path = self._path(engines_name, support_id)
        if path is None or not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as archive:
                prototype, calibration = archive["prototype"], archive["calibration"]
                label = str(archive["label"]) if "label" in archive.files else None
                labeler = str(archive["labeler"]) if "labeler" in archive.files else None
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            log.warning("ignoring unreadable prototype cache %s: %s", path, exc)
            return None
        valid = (
            prototype.ndim == 1 and np.issubdtype(prototype.dtype, np.floating) and np.isfinite(prototype).all()
            and calibration.shape == (2,) and np.isfinite(calibration).all()
        )
        if not valid:
            log.warning("ignoring malformed prototype cache %s", path)
            return None
        if label is not None and not label.strip():
            label = None
        return (prototype.astype(np.float32), MatchCalibration(float(calibration[0]), float(calibration[1])),
                label, labeler)

    def save(self, engines_name: str, support: Support, labeler: str | None = None) -> None:
        path = self._path(engines_name, support.support_id)
        if path is None:
            return
        calibration = np.array([support.calibration.self_similarity, support.calibration.floor], np.float64)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Write then rename: a processor killed mid-write must not leave a half file to load next time.
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                labelled = {"label": np.str_(support.label), "labeler": np.str_(labeler)} \
                    if support.label and labeler else {}
                np.savez(fh, prototype=support.prototype.astype(np.float32), calibration=calibration, **labelled)
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("cannot cache the support prototype in %s: %s", path.parent, exc.strerror or exc)


def apply_support(persense: PerSense, image_rgb: np.ndarray, mask: np.ndarray, cache: PrototypeCache) -> Support:
    """Set the pipeline's support, from the cache when this engine set has seen this support before."""
    mask = np.asarray(mask).astype(bool)
    name = persense.engines.name
    support_id = support_id_for(image_rgb, mask, name)
    cached = cache.load_entry(name, support_id)
    # The label is the class-label extractor's, cached under its name (a configured label needs no cache).
    labeler = getattr(persense.labeler, "name", None)
    if cached is not None:
        prototype, calibration, label, label_by = cached
        label = label if labeler is not None and label_by == labeler else None
        log.info("support %s: prototype%s from the cache", support_id, " and label" if label else "")
        support = persense.set_support(image_rgb, mask, prototype=prototype, calibration=calibration, label=label)
        if labeler is not None and label is None and persense.fixed_label is None:
            cache.save(name, support, labeler)
        return support
    support = persense.set_support(image_rgb, mask)
    cache.save(name, support, labeler if persense.fixed_label is None else None)
    return support


def support_from_bytes(
    image_data: bytes, mask_data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """set_support's two frames (or an upload's two files) -> (uint8[H, W, 3] RGB, bool[H, W]), decoded exactly
    as read_image and read_mask decode files, so the same PNGs give the same support either way. Images beyond
    `max_pixels`, or decoding to more than `max_bytes` (see decode_image_bytes), are refused from their headers,
    before decoding (UserError). The image is made 8-bit RGB at once, in the decoded array's own memory."""
    image = to_rgb8(decode_image_bytes(image_data, "support image", max_pixels=max_pixels, max_bytes=max_bytes),
                    in_place=True)
    mask = mask_from_raw(decode_image_bytes(mask_data, "support mask", max_pixels=max_pixels, max_bytes=max_bytes))
    return image, mask


def initial_support(image_path: Path | None, mask_path: Path | None, sources: list) -> tuple[np.ndarray, np.ndarray]:
    """The support given by paths, else the simulator's own when the first source is the simulator, or the recorded
    support of an archive's first frame when it is an archive.

    Args:
        sources: the configured SourceConfigs (uri, camera_id, options).
    """
    if (image_path is None) != (mask_path is None):
        raise UserError("give both --support IMAGE and --support-mask MASK (or neither, with the simulator source)")
    if image_path is not None:
        return read_image(image_path, "support image"), read_mask(mask_path, "support mask")
    from streamer.sources import open_source, source_kind

    if sources and source_kind(sources[0].uri) in ("sim", "archive"):
        # The same URI and options make the same simulator, so its support shows the objects it renders.
        return open_source(sources[0].uri, sources[0].camera_id, **sources[0].options).support()
    raise UserError("no support set: give --support IMAGE --support-mask MASK (or support: in the config)")


def camera_supports(sources: list) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The cameras that show a product of their own (SourceConfig.support) -> its (uint8[H, W, 3] RGB, bool[H, W]),
    read from its files; UserError naming the camera when one is missing or unreadable."""
    supports = {}
    for source in sources:
        own = source.support
        if own is None:
            continue
        if own.image is None or own.mask is None:
            raise UserError(f"camera {source.camera_id}: its support needs both image and mask")
        try:
            supports[source.camera_id] = (read_image(own.image, "support image"), read_mask(own.mask, "support mask"))
        except UserError as exc:
            raise UserError(f"camera {source.camera_id}: {exc}") from None
    return supports
