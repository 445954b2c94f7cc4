"""CounTR architecture and checkpoint loading: names and shapes must match the public FSC-147 checkpoint."""

from __future__ import annotations

import argparse
import logging
from fractions import Fraction
from pathlib import Path, PurePosixPath

import numpy as np
import pytest
import torch

from engines.countr.checkpoint import check_state_dict, load_countr, read_state_dict
from engines.countr.layers import sincos_pos_embed_2d
from engines.countr.model import TINY_SPEC, CounTR, CountrSpec
from streamer.errors import EngineError

KEY_LIST = Path(__file__).parent / "data" / "countr-state-dict.tsv"
DTYPES = {"float32": torch.float32, "float16": torch.float16, "int64": torch.int64}


def key_list() -> list[tuple[str, tuple[int, ...], str]]:
    """(key, shape, dtype) rows of the reference checkpoint's state dict."""
    rows = []
    for line in KEY_LIST.read_text().splitlines()[1:]:
        key, shape, dtype = line.split("\t")
        rows.append((key, tuple(int(d) for d in shape.split("x")), dtype))
    return rows


def random_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {k: (torch.randn(shape, generator=gen) * 0.02).to(DTYPES[dtype]) for k, shape, dtype in key_list()}


@pytest.fixture(scope="module")
def full_model() -> CounTR:
    return CounTR().eval()


@pytest.fixture(scope="module")
def reference_state() -> dict[str, torch.Tensor]:
    """Random weights with the reference checkpoint's names, shapes and dtypes (tests take shallow copies)."""
    return random_state_dict()


def test_key_list_is_the_reference_one():
    rows = key_list()
    assert len(rows) == 225
    assert sum(int(np.prod(shape)) for _, shape, _ in rows) == pytest.approx(99.7e6, rel=1e-3)


def test_model_state_dict_has_exactly_the_reference_keys_shapes_and_dtypes(full_model):
    ours = {k: (tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in full_model.state_dict().items()}
    ref = {k: (shape, dtype) for k, shape, dtype in key_list()}
    assert sorted(set(ref) - set(ours)) == []
    assert sorted(set(ours) - set(ref)) == []
    assert {k: v for k, v in ours.items() if ref[k] != v} == {}


def test_random_state_dict_from_the_key_list_loads_strictly(reference_state):
    state = dict(reference_state)
    state["mask_token"] = torch.zeros(1, 1, 512)  # an MAE leftover: ignored
    model = CounTR()
    model.load_state_dict(check_state_dict(model, state, "random"), strict=True)
    for key in ("pos_embed", "blocks.11.mlp.fc2.weight", "decode_head3.3.bias", "shot_token"):
        assert torch.equal(model.state_dict()[key], state[key])


def test_missing_key_is_a_one_line_error_naming_it(full_model, reference_state):
    state = dict(reference_state)
    del state["decoder_blocks.1.attn.wk.bias"]
    with pytest.raises(EngineError, match=r"missing key\(s\) decoder_blocks\.1\.attn\.wk\.bias$") as err:
        check_state_dict(full_model, state, "x.pth")
    assert "\n" not in str(err.value)


def test_misshapen_key_is_a_one_line_error_naming_it(full_model, reference_state):
    state = dict(reference_state)
    state["pos_embed"] = torch.zeros(1, 577, 768)  # a class-token position embedding
    with pytest.raises(EngineError, match=r"wrong shape: pos_embed is 1x577x768, expected 1x576x768") as err:
        check_state_dict(full_model, state, "x.pth")
    assert "\n" not in str(err.value)


def test_many_missing_keys_are_summarised(full_model):
    with pytest.raises(EngineError, match=r"missing key\(s\) pos_embed, .* and 220 more$"):
        check_state_dict(full_model, {}, "empty.pth")


def test_leftover_keys_are_ignored_and_reported_once(tmp_path, caplog):
    model = CounTR(TINY_SPEC)
    state = dict(model.state_dict())
    state.update({"mask_token": torch.zeros(1, 1, 32), "decoder_pred.weight": torch.zeros(4, 4)})
    path = tmp_path / "ck.pth"
    # Training checkpoints keep Python objects next to the weights (arguments, paths): loaded as inert stand-ins.
    extras = {"args": argparse.Namespace(lr=1e-5, out=PurePosixPath("/x")), "f": Fraction(1, 3), "epoch": 3}
    torch.save({"model": state, **extras}, path)
    with caplog.at_level(logging.INFO, logger="engines.countr.checkpoint"):
        loaded = load_countr(path, TINY_SPEC)
    lines = [r.getMessage() for r in caplog.records if "does not use" in r.getMessage()]
    assert len(lines) == 1 and "decoder_pred.weight" in lines[0] and "mask_token" in lines[0]
    assert torch.equal(loaded.shot_token, model.shot_token)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"not a checkpoint", "cannot read CounTR checkpoint"),
        (None, "expected a dict with a 'model' state dict"),
    ],
)
def test_unreadable_checkpoints_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "bad.pth"
    if content is None:
        torch.save({"model": {"a": [1, 2]}}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(EngineError, match=message) as err:
        read_state_dict(path)
    assert "\n" not in str(err.value)
    with pytest.raises(EngineError, match="not found"):
        read_state_dict(tmp_path / "absent.pth")


def test_sincos_position_embedding_encodes_column_then_row():
    table = sincos_pos_embed_2d(16, 4).reshape(4, 4, 16)  # [row, col, channel]
    assert torch.allclose(table[0, 0], torch.tensor([0.0] * 4 + [1.0] * 4 + [0.0] * 4 + [1.0] * 4))
    assert torch.allclose(table[:, 2, :8], table[0, 2, :8].expand(4, 8))  # first half: column only
    assert torch.allclose(table[3, :, 8:], table[3, 0, 8:].expand(4, 8))  # second half: row only
    assert not torch.allclose(table[0, 1, :8], table[0, 2, :8])


def test_every_layernorm_has_eps_1e6_and_norms_have_no_hidden_parameters(full_model):
    norms = [m for m in full_model.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert len(norms) == 12 * 2 + 1 + 2 * 3 + 1 and all(m.eps == 1e-6 for m in norms)
    inorms = [m for m in full_model.modules() if isinstance(m, torch.nn.InstanceNorm2d)]
    assert len(inorms) == 4 and all(not m.affine and not m.track_running_stats for m in inorms)
    groups = [m for m in full_model.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert [m.num_groups for m in groups] == [8] * 4


def test_forward_shapes_and_exemplar_tokens():
    torch.manual_seed(0)
    model = CounTR(TINY_SPEC).eval()
    with torch.no_grad():
        tokens = model.encode_exemplars(torch.rand(2, 3, 3, 64, 64))
        density = model(torch.rand(5, 3, 384, 384), torch.rand(2, 3, 3, 64, 64))
    assert tokens.shape == (2, 3, TINY_SPEC.decoder_dim)
    assert density.shape == (2, 5, 384, 384)
    assert CountrSpec.from_dict(TINY_SPEC.to_dict()) == TINY_SPEC


def test_groups_equal_separate_calls_and_a_repeated_exemplar_equals_one():
    torch.manual_seed(1)
    model = CounTR(TINY_SPEC).eval()
    windows = torch.rand(2, 3, 384, 384)
    ex = torch.rand(2, 3, 3, 64, 64)
    with torch.no_grad():
        both = model(windows, ex)
        first, second = model(windows, ex[:1]), model(windows, ex[1:])
        once = model(windows, ex[:1, :1])
        thrice = model(windows, ex[:1, :1].expand(1, 3, 3, 64, 64))
        zero_shot = model.forward_tokens(windows, model.zero_shot_tokens())
    tol = 1e-5 * float(both.abs().max())
    torch.testing.assert_close(both, torch.cat([first, second]), rtol=0, atol=tol)
    torch.testing.assert_close(once, thrice, rtol=0, atol=tol)
    assert not torch.allclose(first, second)
    assert zero_shot.shape == (1, 2, 384, 384)


class _Payload:
    """Unpickles as a call to os.system: must never run when a checkpoint is read."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_reading_a_checkpoint_runs_no_code_from_it(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pth"
    torch.save({"model": dict(CounTR(TINY_SPEC).state_dict()), "hook": _Payload(marker)}, path)
    with pytest.raises(EngineError, match="refers to posix.system, which torch refuses to load") as err:
        read_state_dict(path)
    assert "\n" not in str(err.value) and not marker.exists()
