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


def read_negatives(support) -> list:
    """The negative examples of a SupportConfig, read from their files."""
    from streamer.stream.product_examples import SimulatorExamples, read_example

    return [read_example(n, SimulatorExamples(None), f"negative example {k}") for k, n in enumerate(support.negatives)]


def build_products(config: Config):
    """The configuration's products (top-level `products`), each with its support and negatives, over one engine
    set: a streamer.persense.products.Products."""
    from streamer.engine_factory import build_engines, build_label_extractor
    from streamer.persense.products import Products
    from streamer.stream.product_examples import read_products
    from streamer.stream.worker_choice import resolved_product_threads

    examples = read_products(config.products)
    products = Products(build_engines(config.engines), config.pipeline, build_gate(config.gate),
                        labeler=build_label_extractor(config.engines.cle), label=examples[0].label,
                        max_products=config.stream.max_products, default_name=examples[0].name,
                        threads=resolved_product_threads(config.stream.product_threads))
    products.set_support(*examples[0].support)
    for spec in examples[1:]:
        products.add(spec.name, *spec.support, label=spec.label)
    for spec in examples:
        for image, mask in spec.negatives:
            products.product(spec.name).add_negative(image, mask)
    log.info("products: %s", ", ".join(products.names))
    return products


def config_from_args(args: argparse.Namespace) -> Config:
    return load_config(args.config)


