"""The result schema `persense.result/1`, shared by `persense segment` files and the published stream.

Documented for subscribers in docs/stream-protocol.md.
"""

from __future__ import annotations

from streamer.rle import encode_crops
from streamer.types import SegmentationResult

SCHEMA = "persense.result/1"


def result_to_dict(result: SegmentationResult, include_masks: bool = True, **extra) -> dict:
    """JSON-ready dict of one frame's result; `extra` keys (camera, seq, ...) are added at the top level."""
    frame_hw = (result.height, result.width)
    masks = encode_crops([(i.mask, i.bbox) for i in result.instances], frame_hw) if include_masks else []
    instances = []
    for k, inst in enumerate(result.instances):
        item = {
            "id": inst.id,
            "score": round(float(inst.score), 5),
            "bbox": [int(v) for v in inst.bbox],
            "area": inst.area,
            "centroid": [round(v, 2) for v in inst.centroid],
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
