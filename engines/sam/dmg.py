"""A training-free density map generator on SAM's image embedding: exemplar prototype correlation.

1. The embedding cells in the central half of each exemplar box are averaged into a prototype (L2-normalised cells and result).
2. Every cell's correlation with its best-matching prototype, R, is rescaled so that the background level
   (a low percentile of R) maps to 0 and the exemplars' own level to 1.
3. On a working grid of about 4 input pixels per cell, local maxima of that score (smoothed at a quarter of the
   exemplars' size) above one half, at least about half an object's size apart, are the objects; each gets a Gaussian of unit mass sized by the exemplars.
4. The density is scaled to the frame preserving mass: each object integrates to about 1, count = the sum.

It needs no second model, so a SAM-only configuration runs the whole pipeline.
"""

from __future__ import annotations

import cv2
import numpy as np

from engines.interfaces import DensityOutput, ImageEmbedding

# Cells per side of the working grid relative to SAM's 64 x 64 embedding grid.
_UPSAMPLE = 4


class SamCorrelationDmg:
    """DensityMapGenerator on any encoder's feature grid (SAM's 256 x 64 x 64 embedding here).

    Args:
        peak_threshold: minimum rescaled correlation (0 = background level, 1 = exemplar level) of an object.
        background_percentile: percentile of the correlation map taken as the background level.
        sigma_fraction: the Gaussian's sigma as a fraction of the exemplars' smaller side.
    """

    def __init__(self, peak_threshold: float = 0.5, background_percentile: float = 10.0, sigma_fraction: float = 0.25):
        self.peak_threshold = peak_threshold
        self.background_percentile = background_percentile
        self.sigma_fraction = sigma_fraction

    def density(self, image_rgb: np.ndarray, embedding: ImageEmbedding, exemplar_boxes: np.ndarray) -> DensityOutput:
        """exemplar_boxes: float[M, 4] (x0, y0, x1, y1) frame pixels -> density float32[H, W], count."""
        h, w = image_rgb.shape[:2]
        boxes = np.asarray(exemplar_boxes, np.float32).reshape(-1, 4)
        boxes = boxes[(boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])]
        if len(boxes) == 0:
            return DensityOutput(np.zeros((h, w), np.float32), 0.0)
        score = self.score_map(embedding, boxes, (h, w))
        work_hw = (min(h, _UPSAMPLE * score.shape[0]), min(w, _UPSAMPLE * score.shape[1]))
        work = cv2.resize(score, (work_hw[1], work_hw[0]), interpolation=cv2.INTER_LINEAR)
        fy, fx = work_hw[0] / h, work_hw[1] / w
        obj_w = float(np.mean(boxes[:, 2] - boxes[:, 0])) * fx
        obj_h = float(np.mean(boxes[:, 3] - boxes[:, 1])) * fy
        peaks = self._peaks(work, min(obj_w, obj_h))
        dens = np.zeros(work_hw, np.float32)
        if len(peaks):
            np.add.at(dens, (peaks[:, 1], peaks[:, 0]), 1.0)
            sigma = max(self.sigma_fraction * min(obj_w, obj_h), 0.7)
            dens = cv2.GaussianBlur(dens, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_CONSTANT)
        if work_hw != (h, w):
            # Bilinear scaling keeps the map's shape; the factor keeps each object's mass.
            dens = cv2.resize(dens, (w, h), interpolation=cv2.INTER_LINEAR) * (fx * fy)
        dens = np.maximum(dens, 0.0, out=dens)
        return DensityOutput(dens.astype(np.float32, copy=False), float(dens.sum(dtype=np.float64)))

    def score_map(self, embedding: ImageEmbedding, boxes: np.ndarray, frame_hw: tuple[int, int]) -> np.ndarray:
        """float32[vh, vw]: correlation with the best exemplar prototype, 0 = background level, 1 = exemplars."""
        vh, vw = embedding.valid_hw
        feats = embedding.features[:, :vh, :vw].astype(np.float32)
        flat = feats.reshape(feats.shape[0], -1)
        flat = flat / np.maximum(np.linalg.norm(flat, axis=0, keepdims=True), 1e-12)
        h, w = frame_hw
        # The valid grid maps linearly onto the frame (as the pipeline's similarity map does).
        cx = (np.arange(vw) + 0.5) * (w / vw)
        cy = (np.arange(vh) + 0.5) * (h / vh)
        protos, cells = [], []
        for x0, y0, x1, y1 in boxes:
            # The box's central half: a box around a mask also holds background in its corners.
            qx, qy = (x1 - x0) / 4, (y1 - y0) / 4
            cols = np.nonzero((cx >= x0 + qx) & (cx < x1 - qx))[0]
            rows = np.nonzero((cy >= y0 + qy) & (cy < y1 - qy))[0]
            if len(cols) == 0:
                cols = np.asarray([min(int((x0 + x1) / 2 * vw / w), vw - 1)])
            if len(rows) == 0:
                rows = np.asarray([min(int((y0 + y1) / 2 * vh / h), vh - 1)])
            idx = (rows[:, None] * vw + cols[None, :]).reshape(-1)
            proto = flat[:, idx].mean(axis=1)
            protos.append(proto / max(float(np.linalg.norm(proto)), 1e-12))
            cells.append(idx)
        corr = (np.stack(protos) @ flat).max(axis=0)
        exemplar_level = float(np.mean([corr[idx].max() for idx in cells]))
        background = float(np.percentile(corr, self.background_percentile))
        scale = max(exemplar_level - background, 1e-6)
        return ((corr - background) / scale).reshape(vh, vw).astype(np.float32)

    def _peaks(self, score: np.ndarray, object_side: float) -> np.ndarray:
        """int[P, 2] (x, y) local maxima of `score` above the threshold, about half an object apart or more."""
        # Smoothing at a quarter of the object's size merges the cell-level noise inside one object into one peak.
        sigma = max(0.25 * object_side, 0.5)
        score = cv2.GaussianBlur(score, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REPLICATE)
        k = max(3, int(round(0.7 * object_side)) | 1)
        dilated = cv2.dilate(score, np.ones((k, k), np.uint8))
        mask = ((score >= dilated) & (score >= self.peak_threshold)).astype(np.uint8)
        if not mask.any():
            return np.zeros((0, 2), np.int64)
        # A flat top yields several equal maxima: one peak per connected plateau.
        n, _, _, centroids = cv2.connectedComponentsWithStats(mask, connectivity=8)
        return np.rint(centroids[1:]).astype(np.int64)
