"""Algorithm 1 over the engine interfaces, with small deterministic engines whose answers are known."""

import cv2
import numpy as np

from engines.interfaces import DecoderOutput, DensityOutput, EngineSet, ImageEmbedding
from streamer.config import PipelineConfig
from streamer.persense import PerSense

H, W = 120, 160
OBJECTS = [(20, 20), (60, 30), (100, 80), (140, 100), (30, 90), (120, 40)]  # (x, y), radius 8


class ColourEncoder:
    """Features = the pixel's RGB on the frame grid: the support prototype is the object's colour."""

    def encode(self, image):
        feats = image.astype(np.float32).transpose(2, 0, 1) / 255.0 + 1e-3
        return ImageEmbedding(feats, image.shape[:2], image.shape[:2])


class DiscDecoder:
    """Each prompt -> a radius-8 disc around it; score decreases with the prompt's index."""

    def __init__(self):
        self.calls = []

    def decode_points(self, embedding, points_xy, guidance=None):
        self.calls.append((len(points_xy), guidance is not None))
        labels = np.zeros(embedding.frame_hw, np.int32)
        for i, (x, y) in enumerate(points_xy):
            cv2.circle(labels, (int(round(x)), int(round(y))), 8, i + 1, -1)
        scores = np.linspace(0.9, 0.5, len(points_xy), dtype=np.float32)[:, None]
        return DecoderOutput(None, scores, embedding.frame_hw, labels=labels)


class ScriptedDmg:
    """Returns the scripted densities in turn and records the exemplar boxes it was given."""

    def __init__(self, densities):
        self.densities = list(densities)
        self.exemplars = []

    def density(self, image, embedding, exemplar_boxes):
        self.exemplars.append(np.asarray(exemplar_boxes))
        d = self.densities.pop(0)
        return DensityOutput(d, float(d.sum()))


def blobs(centres):
    d = np.zeros((H, W), np.float32)
    for x, y in centres:
        cv2.circle(d, (x, y), 6, 1.0, -1)
    return d / max(d.sum(), 1e-9) * len(centres)


def scene():
    image = np.full((H, W, 3), 40, np.uint8)
    for x, y in OBJECTS:
        cv2.circle(image, (x, y), 8, (230, 140, 30), -1)
    return image


def pipeline(densities, **config):
    decoder, dmg = DiscDecoder(), ScriptedDmg(densities)
    persense = PerSense(EngineSet(ColourEncoder(), decoder, dmg, "test"), PipelineConfig(**config))
    image = scene()
    mask = np.zeros((H, W), bool)
    cv2.circle(mask.view(np.uint8), OBJECTS[0], 8, 1, -1)
    persense.set_support(image, mask)
    return persense, decoder, dmg, image


def test_one_batched_decoder_call_per_pass_guided_first_then_plain():
    persense, decoder, dmg, image = pipeline([blobs(OBJECTS), blobs(OBJECTS)])
    result = persense.segment(image)
    assert result.count == len(OBJECTS)
    # Initial exemplar (1 point, guided), first pass (all points, guided), feedback pass (all points, plain).
    assert decoder.calls == [(1, True), (6, True), (6, False)]


def test_feedback_exemplars_are_the_top_four_masks_by_score():
    persense, decoder, dmg, image = pipeline([blobs(OBJECTS), blobs(OBJECTS)])
    result = persense.segment(image)
    first, feedback = dmg.exemplars
    assert len(first) == 1  # the box of the mask decoded at P_max
    top4 = sorted(result.instances, key=lambda i: -i.score)[:4]
    assert sorted(map(tuple, feedback.astype(int).tolist())) == sorted(i.bbox for i in top4)


def test_a_feedback_pass_that_finds_nothing_keeps_the_first_pass_answer():
    persense, decoder, dmg, image = pipeline([blobs(OBJECTS[:4]), np.zeros((H, W), np.float32)])
    result = persense.segment(image)
    assert result.count == 4
    assert result.density_count > 3.5


def test_no_feedback_iterations_runs_one_pass():
    persense, decoder, dmg, image = pipeline([blobs(OBJECTS)], feedback_iterations=0)
    assert persense.segment(image).count == len(OBJECTS)
    assert len(dmg.exemplars) == 1


def test_empty_density_gives_count_zero():
    persense, decoder, dmg, image = pipeline([np.zeros((H, W), np.float32)] * 2)
    result = persense.segment(image)
    assert result.count == 0 and result.union_mask().sum() == 0
