"""SAM model types, building the segment-anything torch model, and checkpoint loading with a type check.

Model types: the official vit_b / vit_l / vit_h, and `tiny`, a small configuration of the same architecture
(same 1024 input, 16-pixel patches, 64 x 64 embedding grid, 256 x 256 low-res masks) for fast tests.
torch and segment_anything are imported only inside the functions that need them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from engines.torch_files import checkpoint_file, load_problem
from engines.errors import UserError

log = logging.getLogger(__name__)

IMAGE_SIZE = 1024
PATCH_SIZE = 16
GRID = IMAGE_SIZE // PATCH_SIZE  # 64: the image embedding's side
LOW_RES = 4 * GRID  # 256: the decoder's mask side
PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class SamSpec:
    encoder_dim: int
    encoder_depth: int
    encoder_heads: int
    global_attn: tuple[int, ...]
    prompt_dim: int = 256  # the image embedding's channels and the decoder transformer's width
    decoder_mlp: int = 2048
    decoder_heads: int = 8
    iou_hidden: int = 256


SPECS: dict[str, SamSpec] = {
    "vit_b": SamSpec(768, 12, 12, (2, 5, 8, 11)),
    "vit_l": SamSpec(1024, 24, 16, (5, 11, 17, 23)),
    "vit_h": SamSpec(1280, 32, 16, (7, 15, 23, 31)),
    # Not a released model: the real architecture shrunk so that tests export and run it in seconds.
    "tiny": SamSpec(32, 2, 2, (1,), prompt_dim=64, decoder_mlp=128, decoder_heads=2, iou_hidden=64),
}
OFFICIAL_TYPES = ("vit_b", "vit_l", "vit_h")


def spec_for(model_type: str) -> SamSpec:
    if model_type not in SPECS:
        raise UserError(f"unknown SAM model type {model_type!r}: use one of {', '.join(OFFICIAL_TYPES)}")
    return SPECS[model_type]


def build_torch_sam(model_type: str):
    """-> segment_anything.modeling.Sam with default-initialised weights, in eval mode."""
    from functools import partial

    import torch
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    s = spec_for(model_type)
    sam = Sam(
        image_encoder=ImageEncoderViT(
            depth=s.encoder_depth,
            embed_dim=s.encoder_dim,
            img_size=IMAGE_SIZE,
            mlp_ratio=4,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=s.encoder_heads,
            patch_size=PATCH_SIZE,
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=s.global_attn,
            window_size=14,
            out_chans=s.prompt_dim,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=s.prompt_dim,
            image_embedding_size=(GRID, GRID),
            input_image_size=(IMAGE_SIZE, IMAGE_SIZE),
            mask_in_chans=16,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(
                depth=2, embedding_dim=s.prompt_dim, mlp_dim=s.decoder_mlp, num_heads=s.decoder_heads
            ),
            transformer_dim=s.prompt_dim,
            iou_head_depth=3,
            iou_head_hidden_dim=s.iou_hidden,
        ),
        pixel_mean=list(PIXEL_MEAN),
        pixel_std=list(PIXEL_STD),
    )
    return sam.eval()


def random_state_dict(model_type: str, seed: int = 0) -> dict:
    """Random weights for `model_type`: default initialisation, with the parameters that SAM initialises to
    zero (absolute and relative position embeddings) filled too, so no part of the model is trivially inert."""
    import torch

    torch.manual_seed(seed)
    sam = build_torch_sam(model_type)
    with torch.no_grad():
        for name, param in sam.named_parameters():
            if "pos_embed" in name or "rel_pos" in name:
                param.normal_(0.0, 0.02)
    return sam.state_dict()


def detect_model_type(state_dict: dict) -> str | None:
    """The official type a state dict's image encoder matches (by width and depth), or None."""
    pos = state_dict.get("image_encoder.pos_embed")
    if pos is None or getattr(pos, "ndim", 0) != 4:
        return None
    width = int(pos.shape[-1])
    depth = len({k.split(".")[2] for k in state_dict if k.startswith("image_encoder.blocks.")})
    for name, s in SPECS.items():
        if s.encoder_dim == width and s.encoder_depth == depth:
            return name
    return None


def load_state_dict(path: Path | str) -> dict:
    """Read a checkpoint file (a plain state dict, or one wrapped under 'model' / 'state_dict')."""
    import torch

    path = checkpoint_file(path)
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(f"cannot read checkpoint {path}: {load_problem(exc)}") from None
    for key in ("model", "state_dict"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj:
        raise UserError(f"checkpoint {path} holds no state dict")
    return obj


def load_checkpoint(path: Path | str, model_type: str):
    """-> a torch Sam of `model_type` with the checkpoint's weights; UserError if the checkpoint is another type."""
    state = load_state_dict(path)
    found = detect_model_type(state)
    if found is None:
        raise UserError(f"checkpoint {path} is not a Segment Anything checkpoint (no image_encoder.pos_embed)")
    if found != model_type:
        raise UserError(f"checkpoint {path} is a {found} checkpoint, but --model-type {model_type} was given")
    sam = build_torch_sam(model_type)
    try:
        result = sam.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        first = [line.strip() for line in str(exc).splitlines() if "size mismatch" in line][:1] or ["bad tensors"]
        raise UserError(f"checkpoint {path} does not fit {model_type}: {first[0][:200]}") from None
    if result.missing_keys or result.unexpected_keys:
        keys = (result.missing_keys + result.unexpected_keys)[:3]
        raise UserError(f"checkpoint {path} does not fit {model_type}: mismatched keys such as {', '.join(keys)}")
    return sam.eval()
