"""A contact sheet of cases: each query image with the support's outline (when the support comes from it) and
the truth's outlines, to check by eye that scenes look like products on a belt and that the truth fits."""

from __future__ import annotations

import cv2
import numpy as np

from streamer.devset.cases import Case


def outlined(case: Case, truth: bool = True) -> np.ndarray:
    """uint8[H, W, 3]: the query with the truth outlined thin cyan and, for a same-image case, the support thick
    magenta."""
    image = np.ascontiguousarray(case.image.copy())
    if truth and case.labels.max() > 0:
        edges = cv2.morphologyEx(case.labels.astype(np.float32), cv2.MORPH_GRADIENT, np.ones((2, 2), np.uint8)) > 0
        image[edges] = (0, 255, 255)
    if case.support_image is case.image:
        contours, _ = cv2.findContours(case.support_mask.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(image, contours, -1, (255, 0, 255), 2)
    return image


def contact_sheet(cases: list[Case], path: str, tile: tuple[int, int] = (480, 360), columns: int = 4,
                  truth: bool = False) -> np.ndarray:
    """Writes (and returns, uint8 RGB) the cases side by side, each titled with its category and name."""
    w, h = tile
    tiles = []
    for case in cases:
        small = cv2.resize(outlined(case, truth), (w, h), interpolation=cv2.INTER_AREA)
        cv2.rectangle(small, (0, 0), (w, 20), (0, 0, 0), -1)
        cv2.putText(small, f"{case.category}: {case.name}"[:60], (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(small)
    while len(tiles) % columns:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.concatenate(tiles[i : i + columns], axis=1) for i in range(0, len(tiles), columns)]
    sheet = np.concatenate(rows, axis=0)
    cv2.imwrite(path, sheet[..., ::-1])
    return sheet
