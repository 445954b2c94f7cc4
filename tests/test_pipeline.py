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
        self.calls.append((len(points_xy), guidance is not None and guidance.targeted))
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
    config.setdefault("initial_exemplars", 1)  # the paper's single P_max unless a test asks for more
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


class GiantDiscDecoder(DiscDecoder):
    """Like DiscDecoder, but the prompts listed in `giant` get a mask far larger than any object."""

    def __init__(self, giant):
        super().__init__()
        self.giant = set(giant)

    def decode_points(self, embedding, points_xy, guidance=None):
        out = super().decode_points(embedding, points_xy, guidance)
        for i, (x, y) in enumerate(points_xy):
            if len(points_xy) > 1 and i in self.giant:
                cv2.circle(out.labels, (int(round(x)), int(round(y))), 45, i + 1, -1)
        return out


def test_masks_many_times_the_exemplars_size_are_dropped():
    decoder, dmg = GiantDiscDecoder({2}), ScriptedDmg([blobs(OBJECTS)])
    config = PipelineConfig(feedback_iterations=0, initial_exemplars=1)
    persense = PerSense(EngineSet(ColourEncoder(), decoder, dmg, "test"), config)
    image = scene()
    mask = np.zeros((H, W), bool)
    cv2.circle(mask.view(np.uint8), OBJECTS[0], 8, 1, -1)
    persense.set_support(image, mask)
    result = persense.segment(image)
    # The 90 px mask is over 2x the 17 px exemplar: dropped; the other five objects stay, renumbered.
    assert result.count == len(OBJECTS) - 1
    assert [inst.id for inst in result.instances] == list(range(len(OBJECTS) - 1))
    assert all(inst.bbox[2] - inst.bbox[0] <= 20 for inst in result.instances)


def test_an_initial_mask_of_another_scale_gives_a_support_sized_exemplar():
    class LeakyDecoder(DiscDecoder):
        def decode_points(self, embedding, points_xy, guidance=None):
            out = super().decode_points(embedding, points_xy, guidance)
            if len(points_xy) == 1:  # the prior's mask leaks over most of the frame
                out.labels[:] = 1
            return out

    dmg = ScriptedDmg([blobs(OBJECTS)])
    config = PipelineConfig(feedback_iterations=0, initial_exemplars=1)
    persense = PerSense(EngineSet(ColourEncoder(), LeakyDecoder(), dmg, "test"), config)
    image = scene()
    mask = np.zeros((H, W), bool)
    cv2.circle(mask.view(np.uint8), OBJECTS[0], 8, 1, -1)
    persense.set_support(image, mask)
    persense.segment(image)
    (x0, y0, x1, y1), = dmg.exemplars[0]
    assert (x1 - x0, y1 - y0) == (17, 17)  # the support mask's box, not the 160 x 120 leak


def test_match_quality_is_high_for_the_support_kind_and_a_foreign_frame_counts_zero():
    persense, decoder, dmg, image = pipeline([blobs(OBJECTS), blobs(OBJECTS)])
    result = persense.segment(image)
    assert result.count == len(OBJECTS)
    assert result.match_quality > 0.8
    # The same density and masks on a frame whose objects are of another colour: not the support's kind.
    other = image.copy()
    other[(image == (230, 140, 30)).all(axis=2)] = (30, 60, 230)
    dmg.densities = [blobs(OBJECTS), blobs(OBJECTS)]
    foreign = persense.segment(other)
    assert foreign.count == 0
    assert foreign.match_quality < persense.config.presence_threshold


def test_presence_threshold_can_be_turned_down():
    persense, decoder, dmg, image = pipeline([blobs(OBJECTS)] * 2, presence_threshold=None)
    other = image.copy()
    other[(image == (230, 140, 30)).all(axis=2)] = (30, 60, 230)
    assert persense.segment(other).count == len(OBJECTS)


def test_three_initial_exemplars_are_separated_priors_decoded_in_one_call():
    persense, decoder, dmg, image = pipeline([blobs(OBJECTS), blobs(OBJECTS)], initial_exemplars=3)
    persense.segment(image)
    assert decoder.calls[0] == (3, True)  # one guided call with three priors
    boxes = dmg.exemplars[0]
    assert len(boxes) == 3
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    # Each prior is on an object (the most support-like places), at least two support objects apart.
    for x, y in centres:
        assert min(np.hypot(x - ox, y - oy) for ox, oy in OBJECTS) <= 8
    d = np.hypot(*(centres[:, None] - centres[None]).transpose(2, 0, 1))
    assert d[np.triu_indices(3, 1)].min() >= 2 * 17


def test_a_feedback_pass_that_finds_fewer_objects_keeps_the_first_answer():
    persense, decoder, dmg, image = pipeline([blobs(OBJECTS), blobs(OBJECTS[:3])])
    result = persense.segment(image)
    assert result.count == len(OBJECTS)


def test_a_feedback_pass_that_finds_as_many_replaces_the_first_answer():
    moved = [(x + 2, y) for x, y in OBJECTS]
    persense, decoder, dmg, image = pipeline([blobs(OBJECTS), blobs(moved)])
    result = persense.segment(image)
    assert sorted(np.round(result.points[:, 0]).astype(int).tolist()) == sorted(x for x, _ in moved)
