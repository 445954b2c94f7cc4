"""The result schema `persense.result/1`, shared by `persense segment` files and the published stream.

Documented for subscribers in docs/stream-protocol.md.
"""

from __future__ import annotations

import numpy as np

from streamer.rle import compress, crop_runs, run_counts, run_stats
from streamer.tracking.measure import as_dict
from streamer.types import SegmentationResult

SCHEMA = "persense.result/1"


def result_to_dict(result: SegmentationResult, include_masks: bool = True, **extra) -> dict:
    """JSON-ready dict of one frame's result; `extra` keys (camera, seq, ...) are added at the top level."""
    frame_hw = (result.height, result.width)
    # One pass over all masks gives the RLEs, areas and centroids: no per-object scan of its pixels.
    runs = crop_runs([(i.mask, i.bbox) for i in result.instances], frame_hw)
    masks = compress(run_counts(runs), frame_hw) if include_masks else []
    areas, centroids = run_stats(runs)
    insts = result.instances
    boxes = np.array([i.bbox for i in insts], np.int64).reshape(-1, 4)
    # An empty mask has no centroid: the box centre stands in.
    centroids = np.where(areas[:, None] > 0, centroids, (boxes[:, :2] + boxes[:, 2:]) / 2.0)
    # Converted to Python numbers in bulk: per-object numpy scalars cost more than the masks' encoding.
    rows = zip([i.id for i in insts], [i.score for i in insts], boxes.tolist(), areas.tolist(), centroids.tolist())
    instances = []
    for k, (ident, score, box, area, (cx, cy)) in enumerate(rows):
        item = {"id": ident, "score": round(float(score), 5), "bbox": box, "area": area,
                "centroid": [round(cx, 2), round(cy, 2)]}
        inst = insts[k]
        if inst.track_id is not None:
            item["track_id"] = int(inst.track_id)
        if inst.measurements is not None:
            item["measure"] = as_dict(inst.measurements)
        if inst.product is not None:  # a camera that counts several products (docs/products.md)
            item["product"] = inst.product
        if include_masks:
            item["mask"] = masks[k]
        instances.append(item)
    doc = {
        "schema": SCHEMA,
        "width": result.width,
        "height": result.height,
        "count": result.count,
        "density_count": round(float(result.density_count), 3),
        "match_quality": round(float(result.match_quality), 4),
        "instances": instances,
        "timings_ms": {k: round(v, 3) for k, v in result.timings_ms.items()},
    }
    if result.label is not None:
        doc["label"] = result.label
    if result.reason:
        doc["reason"] = result.reason
    # Only where the camera has negative examples or several products: a single product's header is as before.
    if result.negatives:
        doc["negatives"] = result.negatives
        doc["suppressed_by_negative"] = result.suppressed_by_negative
    if result.products:
        doc["products"] = result.products
    doc.update(result.tally)
    doc.update(extra)
    return doc
