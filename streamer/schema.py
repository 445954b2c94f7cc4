"""The result schema `persense.result/1`, shared by `persense segment` files and the published stream.

Documented for subscribers in docs/stream-protocol.md.
"""

from __future__ import annotations

from streamer.rle import compress, crop_runs, run_counts, run_stats
from streamer.types import SegmentationResult

SCHEMA = "persense.result/1"


def result_to_dict(result: SegmentationResult, include_masks: bool = True, **extra) -> dict:
    """JSON-ready dict of one frame's result; `extra` keys (camera, seq, ...) are added at the top level."""
    frame_hw = (result.height, result.width)
    # One pass over all masks gives the RLEs, areas and centroids: no per-object scan of its pixels.
    runs = crop_runs([(i.mask, i.bbox) for i in result.instances], frame_hw)
    masks = compress(run_counts(runs), frame_hw) if include_masks else []
    areas, centroids = run_stats(runs)
    instances = []
    for k, inst in enumerate(result.instances):
        x0, y0, x1, y1 = inst.bbox
        cx, cy = centroids[k] if areas[k] else ((x0 + x1) / 2.0, (y0 + y1) / 2.0)
        item = {
            "id": inst.id,
            "score": round(float(inst.score), 5),
            "bbox": [int(x0), int(y0), int(x1), int(y1)],
            "area": int(areas[k]),
            "centroid": [round(float(cx), 2), round(float(cy), 2)],
        }
        if include_masks:
            item["mask"] = masks[k]
        instances.append(item)
    doc = {
        "schema": SCHEMA,
        "width": result.width,
        "height": result.height,
        "count": result.count,
        "density_count": round(float(result.density_count), 3),
        "instances": instances,
        "timings_ms": {k: round(v, 3) for k, v in result.timings_ms.items()},
    }
    doc.update(extra)
    return doc
