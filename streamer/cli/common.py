"""Helpers shared by the subcommands: config + engines + support set -> a ready pipeline."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from streamer.config import Config, load_config
from streamer.errors import UserError
from streamer.gates import build_gate
from streamer.imageio import read_image, read_mask
from streamer.persense import PerSense

log = logging.getLogger(__name__)


def add_config_argument(
    parser: argparse.ArgumentParser, help: str = "configuration file (default: embedded CPU engines, paper defaults)"
) -> None:
    parser.add_argument("--config", type=Path, metavar="YAML", help=help)


def build_pipeline(config: Config) -> PerSense:
    """Engines + gate + algorithm parameters from a config (engines are imported lazily by the factory)."""
    from streamer.engine_factory import build_engines, build_label_extractor

    return PerSense(
        build_engines(config.engines), config.pipeline, build_gate(config.gate),
        labeler=build_label_extractor(config.engines.cle), label=config.support.label,
    )


def load_support(pipeline: PerSense, image_path: Path | None, mask_path: Path | None) -> None:
    if image_path is None or mask_path is None:
        raise UserError("a support set is needed: --support IMAGE and --support-mask MASK (or support: in the config)")
    image = read_image(image_path, "support image")
    mask = read_mask(mask_path, "support mask")
    support = pipeline.set_support(image, mask)
    log.info("support %s: object about %dx%d px%s", support.support_id, *map(int, support.object_size),
             f", label {support.label!r}" if support.label else "")


def config_from_args(args: argparse.Namespace) -> Config:
    return load_config(args.config)


