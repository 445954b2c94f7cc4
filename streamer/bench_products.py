"""`persense bench --products N`: what each product beyond the first costs a camera's frame (docs/products.md).

On the simulator's products mix, the same frames are segmented by a camera counting its first product alone, by
one counting N products in turn (one thread), and by one counting them side by side (`product_threads` threads,
streamer.persense.products), one after another (which goes first rotates frame by frame), in one run: a shared
machine's load then weighs on all alike, and the ratio is measured, not the seconds. A frame's time is the camera's
whole work on it: one encoding, and each product's similarity, density, prompts, decoding and the claim rule.
"""

from __future__ import annotations

import os
import time

import numpy as np

from streamer.errors import UserError
from streamer.persense.products import Products
from streamer.simulator.mix import MixedConveyor
from streamer.types import SegmentationResult


def _scheduler_ms() -> tuple[float, float] | None:
    """(ms run on a core, ms runnable but waiting for one) summed over this process's threads so far (Linux's
    /proc schedstat); None where it cannot be read. The wait is what other processes' load took from a frame."""
    run = wait = 0
    try:
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/schedstat") as stat:
                fields = stat.read().split()
            run, wait = run + int(fields[0]), wait + int(fields[1])
    except (OSError, ValueError, IndexError):
        return None
    return run / 1e6, wait / 1e6


def _timed(products: Products, image: np.ndarray) -> tuple[float, SegmentationResult, tuple | None]:
    """-> (wall ms, result, (ms on a core, ms waiting for one) during the call or None)."""
    before = _scheduler_ms()
    start = time.perf_counter()
    result = products.segment(image)
    wall = (time.perf_counter() - start) * 1000.0
    after = _scheduler_ms()
    sched = None if before is None or after is None else (after[0] - before[0], after[1] - before[1])
    return wall, result, sched


def _same(a: SegmentationResult, b: SegmentationResult) -> bool:
    """Object for object the same result (product, box, score, mask)."""
    return len(a.instances) == len(b.instances) and all(
        x.product == y.product and x.bbox == y.bbox and x.score == y.score and np.array_equal(x.mask, y.mask)
        for x, y in zip(a.instances, b.instances))


def _share(t1: float, tn: float, n_products: int) -> float:
    return round((tn - t1) / (n_products - 1) / t1, 3)


def _spread(single_ms: list[float], multi_ms: list[float], n_products: int) -> dict:
    """The extra product's share per frame: the spread the machine's load gave."""
    per_frame = (np.asarray(multi_ms) - np.asarray(single_ms)) / (n_products - 1) / np.asarray(single_ms)
    return {"median": round(float(np.median(per_frame)), 3), "p10": round(float(np.percentile(per_frame, 10)), 3),
            "p90": round(float(np.percentile(per_frame, 90)), 3)}


def _ms(times: list[float]) -> dict:
    return {"median": round(float(np.median(times)), 2), "p90": round(float(np.percentile(times, 90)), 2)}


def _cores(sched: list) -> dict | None:
    """Per frame, medians: the cores the camera's threads ran on (run time / wall time) and the ms they waited
    for a core (other processes held it)."""
    if not sched or any(s is None for s in sched):
        return None
    return {"cores_used": round(float(np.median([run / wall for wall, run, _ in sched])), 2),
            "waited_for_core_ms": round(float(np.median([wait for _, _, wait in sched])), 2)}


def run_products_benchmark(engines, config, mix: MixedConveyor, examples: MixedConveyor, n_products: int,
                           frames: int, warmup: int = 2, product_threads: int = 2) -> dict:
    """Median frame time of one product and of `n_products` (in turn, and side by side on `product_threads`
    threads), and the cost of each product beyond the first as a share of the one-product frame:
    (t_N - t_1) / (N - 1) / t_1. The supports are the mix's products in order, picked on `examples` (another
    stretch of belt). `results_identical`: whether the products side by side gave, frame for frame, exactly what
    they gave in turn."""
    names = examples.products
    if not 2 <= n_products <= len(names):
        raise UserError(f"--products must be from 2 to {len(names)} (the products mix has {len(names)} products)")

    def camera(count: int, threads: int) -> Products:
        products = Products(engines, config, default_name=names[0], max_products=count, threads=threads)
        products.set_support(*examples.support(names[0]))
        for name in names[1:count]:
            products.add(name, *examples.support(name))
        return products

    one, in_turn, side = camera(1, 1), camera(n_products, 1), camera(n_products, product_threads)
    threads = side.side_by_side()
    cameras = [one, in_turn, side]
    times: dict[int, list[float]] = {id(c): [] for c in cameras}
    sched: dict[int, list] = {id(c): [] for c in cameras}
    counts, identical = [], True
    load_before = os.getloadavg()
    try:
        for index in range(warmup + frames):
            image = mix.frame(index).image
            order = cameras[index % 3:] + cameras[:index % 3]
            timed = {id(c): _timed(c, image) for c in order}
            identical &= _same(timed[id(in_turn)][1], timed[id(side)][1])
            if index < warmup:
                continue
            for c in cameras:
                wall, _, used = timed[id(c)]
                times[id(c)].append(wall)
                sched[id(c)].append(None if used is None else (wall, *used))
            counts.append(timed[id(side)][1].count)
    finally:
        side.close()
    load_after = os.getloadavg()
    single, turn_ms, side_ms = times[id(one)], times[id(in_turn)], times[id(side)]
    t1, tn, ts = float(np.median(single)), float(np.median(turn_ms)), float(np.median(side_ms))
    return {
        "products": n_products,
        "names": names[:n_products],
        "frames": frames,
        "frame": f"{mix.frame(0).image.shape[1]}x{mix.frame(0).image.shape[0]}",
        "engines": engines.name,
        "product_threads": threads,
        "one_product_ms": _ms(single),
        "n_products_ms": _ms(side_ms),
        "extra_product_share": _share(t1, ts, n_products),
        "extra_product_share_per_frame": _spread(single, side_ms, n_products),
        "in_turn": {"n_products_ms": _ms(turn_ms), "extra_product_share": _share(t1, tn, n_products),
                    "extra_product_share_per_frame": _spread(single, turn_ms, n_products)},
        # Whether the threads had the cores: side by side gains only where a core is free for them.
        "scheduler": {"one_product": _cores(sched[id(one)]), "in_turn": _cores(sched[id(in_turn)]),
                      "side_by_side": _cores(sched[id(side)])},
        "results_identical": bool(identical),
        "load_average": {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in load_after]},
        "cores": os.cpu_count(),
        "objects_per_frame": round(float(np.mean(counts)), 2),
    }


def format_products(summary: dict) -> str:
    turn, per_frame = summary["in_turn"], summary["extra_product_share_per_frame"]
    return (f"{summary['engines']}, {summary['frame']}, {summary['frames']} frames each, one camera after another: "
            f"one product "
            f"{summary['one_product_ms']['median']:.1f} ms median; {summary['products']} products "
            f"({', '.join(summary['names'])}) side by side on {summary['product_threads']} thread(s) "
            f"{summary['n_products_ms']['median']:.1f} ms median: each product beyond the first adds "
            f"{summary['extra_product_share']:.2f}x the one-product frame time (per frame: median "
            f"{per_frame['median']:.2f}, p10-p90 {per_frame['p10']:.2f}-{per_frame['p90']:.2f}); in turn "
            f"{turn['n_products_ms']['median']:.1f} ms, {turn['extra_product_share']:.2f}x; results "
            f"{'identical' if summary['results_identical'] else 'DIFFERENT'}; load average "
            f"{summary['load_average']['before'][0]:.2f} -> {summary['load_average']['after'][0]:.2f} on "
            f"{summary['cores']} cores{_format_scheduler(summary['scheduler'])}")


def _format_scheduler(scheduler: dict) -> str:
    if any(v is None for v in scheduler.values()):
        return ""
    return "; cores used / ms waiting for a core, per frame: " + ", ".join(
        f"{name.replace('_', ' ')} {v['cores_used']:.2f} / {v['waited_for_core_ms']:.1f}"
        for name, v in scheduler.items())
