"""`persense bench --products N`: what each product beyond the first costs a camera's frame (docs/products.md).

On the simulator's products mix, the same frames are segmented by a camera counting its first product alone and by
one counting N products, in turn (which goes first alternates frame by frame), in one run: a shared machine's
load then weighs on both alike, and the ratio is measured, not the seconds. A frame's time is the camera's whole
work on it: one encoding, and each product's similarity, density, prompts, decoding and the claim rule.
"""

from __future__ import annotations

import time

import numpy as np

from streamer.errors import UserError
from streamer.persense.products import Products
from streamer.simulator.mix import MixedConveyor


def _timed(products: Products, image: np.ndarray) -> tuple[float, int]:
    start = time.perf_counter()
    result = products.segment(image)
    return (time.perf_counter() - start) * 1000.0, result.count


def run_products_benchmark(engines, config, mix: MixedConveyor, examples: MixedConveyor, n_products: int,
                           frames: int, warmup: int = 2) -> dict:
    """Median frame time of one product and of `n_products`, and the cost of each product beyond the first as a
    share of the one-product frame: (t_N - t_1) / (N - 1) / t_1. The supports are the mix's products in order,
    picked on `examples` (another stretch of belt)."""
    names = examples.products
    if not 2 <= n_products <= len(names):
        raise UserError(f"--products must be from 2 to {len(names)} (the products mix has {len(names)} products)")
    one = Products(engines, config, default_name=names[0])
    one.set_support(*examples.support(names[0]))
    several = Products(engines, config, default_name=names[0], max_products=n_products)
    several.set_support(*examples.support(names[0]))
    for name in names[1:n_products]:
        several.add(name, *examples.support(name))
    single_ms, multi_ms, counts = [], [], []
    for index in range(warmup + frames):
        image = mix.frame(index).image
        order = (one, several) if index % 2 == 0 else (several, one)
        timed = {id(p): _timed(p, image) for p in order}
        if index < warmup:
            continue
        single_ms.append(timed[id(one)][0])
        multi_ms.append(timed[id(several)][0])
        counts.append(timed[id(several)][1])
    t1, tn = float(np.median(single_ms)), float(np.median(multi_ms))
    # Per frame too, so that a reader sees the spread the machine's load gave.
    per_frame = (np.asarray(multi_ms) - np.asarray(single_ms)) / (n_products - 1) / np.asarray(single_ms)
    return {
        "products": n_products,
        "names": names[:n_products],
        "frames": frames,
        "frame": f"{mix.frame(0).image.shape[1]}x{mix.frame(0).image.shape[0]}",
        "engines": engines.name,
        "one_product_ms": {"median": round(t1, 2), "p90": round(float(np.percentile(single_ms, 90)), 2)},
        "n_products_ms": {"median": round(tn, 2), "p90": round(float(np.percentile(multi_ms, 90)), 2)},
        "extra_product_share": round((tn - t1) / (n_products - 1) / t1, 3),
        "extra_product_share_per_frame": {"median": round(float(np.median(per_frame)), 3),
                                          "p10": round(float(np.percentile(per_frame, 10)), 3),
                                          "p90": round(float(np.percentile(per_frame, 90)), 3)},
        "objects_per_frame": round(float(np.mean(counts)), 2),
    }


def format_products(summary: dict) -> str:
    return (f"{summary['engines']}, {summary['frame']}, {summary['frames']} frames each, in turn: one product "
            f"{summary['one_product_ms']['median']:.1f} ms median, {summary['products']} products "
            f"({', '.join(summary['names'])}) {summary['n_products_ms']['median']:.1f} ms median: each product beyond "
            f"the first adds {summary['extra_product_share']:.2f}x the one-product frame time (per frame: median "
            f"{summary['extra_product_share_per_frame']['median']:.2f}, p10-p90 "
            f"{summary['extra_product_share_per_frame']['p10']:.2f}-{summary['extra_product_share_per_frame']['p90']:.2f})")
