"""CounTR ("CounTR: Transformer-based Generalised Visual Counting", Liu et al., BMVC 2022) in torch.

Architecture (FSC-147 configuration, `CountrSpec()`):
- image encoder: MAE ViT-B/16 on 384 x 384 windows, fixed 2-D sine-cosine position embedding, no class token;
- exemplar encoder: four conv3x3 + InstanceNorm + ReLU stages (max-pooling after the first three, global
  average pooling after the last) -> one token per 64 x 64 exemplar crop; a learned `shot_token` when there is none;
- decoder: linear 768 -> 512 + sine-cosine position embedding, 2 blocks of self-attention, cross-attention to the
  exemplar tokens and MLP, final LayerNorm;
- density head: 4 x (conv3x3 -> GroupNorm -> ReLU -> bilinear x2), the last with a 1x1 conv to one channel:
  24 x 24 tokens -> a 384 x 384 density map whose sum / 60 is the count.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from engines.countr.layers import LN_EPS, Block, CrossBlock, PatchEmbed, sincos_pos_embed_2d


@dataclass(frozen=True)
class CountrSpec:
    """Model dimensions. The defaults are the published FSC-147 model; smaller specs exist for fast tests only."""

    img_size: int = 384
    patch_size: int = 16
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    decoder_dim: int = 512
    decoder_depth: int = 2
    decoder_heads: int = 16
    mlp_ratio: float = 4.0
    # Output channels of the first three exemplar-encoder stages; the fourth outputs decoder_dim.
    exemplar_channels: tuple[int, int, int] = (64, 128, 256)
    exemplar_size: int = 64
    head_channels: int = 256
    head_groups: int = 8

    @property
    def grid(self) -> int:
        return self.img_size // self.patch_size

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "CountrSpec":
        values = dict(values)
        values["exemplar_channels"] = tuple(values.get("exemplar_channels", cls.exemplar_channels))
        return cls(**values)


def _exemplar_stage(c_in: int, c_out: int, pool: nn.Module) -> nn.Sequential:
    # InstanceNorm without affine parameters: the checkpoint holds only the conv's weight and bias per stage.
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.InstanceNorm2d(c_out), nn.ReLU(inplace=True), pool)


def _head_stage(spec: CountrSpec, c_in: int, last: bool) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, spec.head_channels, 3, padding=1),
        nn.GroupNorm(spec.head_groups, spec.head_channels),
        nn.ReLU(inplace=True),
    ]
    if last:
        layers.append(nn.Conv2d(spec.head_channels, 1, 1))
    return nn.Sequential(*layers)


class CounTR(nn.Module):
    """forward(windows float32[B, 3, 384, 384] in [0, 1], exemplars float32[G, S, 3, 64, 64] in [0, 1])
    -> density float32[G, B, 384, 384]: every window decoded with every exemplar group (the encoder runs once
    per window); count of a window = sum / 60."""

    def __init__(self, spec: CountrSpec = CountrSpec()):
        super().__init__()
        self.spec = spec
        grid = spec.grid
        self.patch_embed = PatchEmbed(spec.patch_size, spec.embed_dim)
        # Fixed (not trained) but stored in the checkpoint, hence parameters without gradient.
        self.pos_embed = nn.Parameter(sincos_pos_embed_2d(spec.embed_dim, grid)[None], requires_grad=False)
        self.blocks = nn.ModuleList(Block(spec.embed_dim, spec.num_heads, spec.mlp_ratio) for _ in range(spec.depth))
        self.norm = nn.LayerNorm(spec.embed_dim, eps=LN_EPS)

        self.decoder_embed = nn.Linear(spec.embed_dim, spec.decoder_dim)
        self.decoder_pos_embed = nn.Parameter(
            sincos_pos_embed_2d(spec.decoder_dim, grid)[None], requires_grad=False
        )
        self.shot_token = nn.Parameter(torch.zeros(spec.decoder_dim))
        c1, c2, c3 = spec.exemplar_channels
        self.decoder_proj1 = _exemplar_stage(3, c1, nn.MaxPool2d(2))
        self.decoder_proj2 = _exemplar_stage(c1, c2, nn.MaxPool2d(2))
        self.decoder_proj3 = _exemplar_stage(c2, c3, nn.MaxPool2d(2))
        self.decoder_proj4 = _exemplar_stage(c3, spec.decoder_dim, nn.AdaptiveAvgPool2d((1, 1)))
        self.decoder_blocks = nn.ModuleList(
            CrossBlock(spec.decoder_dim, spec.decoder_heads, spec.mlp_ratio) for _ in range(spec.decoder_depth)
        )
        self.decoder_norm = nn.LayerNorm(spec.decoder_dim, eps=LN_EPS)

        self.decode_head0 = _head_stage(spec, spec.decoder_dim, last=False)
        self.decode_head1 = _head_stage(spec, spec.head_channels, last=False)
        self.decode_head2 = _head_stage(spec, spec.head_channels, last=False)
        self.decode_head3 = _head_stage(spec, spec.head_channels, last=True)

    # -- parts ----------------------------------------------------------------------------------------------
    def encode_windows(self, windows: torch.Tensor) -> torch.Tensor:
        """[B, 3, 384, 384] -> image tokens [B, 576, embed_dim]."""
        x = self.patch_embed(windows) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def encode_exemplars(self, exemplars: torch.Tensor) -> torch.Tensor:
        """[G, S, 3, 64, 64] -> exemplar tokens [G, S, decoder_dim]."""
        g, s = exemplars.shape[0], exemplars.shape[1]
        y = exemplars.flatten(0, 1)
        for stage in (self.decoder_proj1, self.decoder_proj2, self.decoder_proj3, self.decoder_proj4):
            y = stage(y)
        return y.reshape(g, s, self.spec.decoder_dim)

    def zero_shot_tokens(self, groups: int = 1) -> torch.Tensor:
        """The learned stand-in for 'no exemplar': [groups, 1, decoder_dim]."""
        return self.shot_token.reshape(1, 1, -1).expand(groups, 1, -1)

    def decode(self, tokens: torch.Tensor, exemplar_tokens: torch.Tensor) -> torch.Tensor:
        """tokens [N, 576, embed_dim], exemplar_tokens [N, S, decoder_dim] -> density [N, 384, 384]."""
        x = self.decoder_embed(tokens) + self.decoder_pos_embed
        for block in self.decoder_blocks:
            x = block(x, exemplar_tokens)
        x = self.decoder_norm(x)
        grid = self.spec.grid
        x = x.transpose(1, 2).reshape(x.shape[0], self.spec.decoder_dim, grid, grid)
        for stage in (self.decode_head0, self.decode_head1, self.decode_head2, self.decode_head3):
            x = F.interpolate(stage(x), scale_factor=2.0, mode="bilinear", align_corners=False)
        return x[:, 0]

    # -- whole model ----------------------------------------------------------------------------------------
    def forward(self, windows: torch.Tensor, exemplars: torch.Tensor) -> torch.Tensor:
        """windows [B, 3, 384, 384], exemplars [G, S, 3, 64, 64] -> density [G, B, 384, 384]."""
        return self.forward_tokens(windows, self.encode_exemplars(exemplars))

    def forward_tokens(self, windows: torch.Tensor, exemplar_tokens: torch.Tensor) -> torch.Tensor:
        """windows [B, 3, 384, 384], exemplar_tokens [G, S, decoder_dim] -> density [G, B, 384, 384]."""
        b = windows.shape[0]
        g, s = exemplar_tokens.shape[0], exemplar_tokens.shape[1]
        tokens = self.encode_windows(windows)
        # Pair every window with every exemplar group, group-major: row i of the batch is (i // B, i % B).
        tokens = tokens.unsqueeze(0).expand(g, -1, -1, -1).flatten(0, 1)
        exemplar_tokens = exemplar_tokens.unsqueeze(1).expand(-1, b, -1, -1).reshape(g * b, s, -1)
        density = self.decode(tokens, exemplar_tokens)
        return density.reshape(g, b, density.shape[-2], density.shape[-1])


# A few-thousand-parameter model with CounTR's structure and input/output sizes, for fast tests of the plumbing
# (export, backends, windows); never loaded from a real checkpoint.
TINY_SPEC = CountrSpec(
    embed_dim=32, depth=1, num_heads=2, decoder_dim=32, decoder_heads=2, exemplar_channels=(8, 8, 16),
    head_channels=16, head_groups=4,
)
