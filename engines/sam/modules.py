"""Torch modules wrapping segment-anything's parts for export (and for the torch backend's guided decoding).

The decoder wrapper decodes a batch of N independent prompts against one image embedding and returns the
256 x 256 low-resolution logits: no frame size is baked into the graph (segment-anything's own ONNX model crops
with the example input's size); masks are scaled to the frame outside the model.

PerSAM guidance (Zhang et al., ICLR 2024, Sec. 2.2), both neutral when their inputs are zero:
- target-semantic prompting: the target's embedding T_R is added to every input token of the decoder
  (T^g = Repeat(T_R) + Concat(output tokens, prompt tokens));
- target-guided attention: every token-to-image attention is re-weighted by the spatial prior softmax(S) of the
  similarity map S. We read the paper's A^g = softmax(A + alpha * softmax(S)) as re-weighting the attention
  distribution by the prior, A^g ~ A * softmax(S)^alpha, i.e. adding alpha * log softmax(S) to the attention
  logits; the log-normaliser is the same for every position and cancels in the softmax, so the graph adds
  `attention_bias` = alpha * S (computed by the runtime) to the logits.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

DECODER_INPUTS = (
    "image_embeddings",  # float32[1, C, 64, 64]
    "point_coords",  # float32[N, P, 2] in the 1024 input frame (x, y)
    "point_labels",  # float32[N, P]: 1 positive, 0 negative, -1 padding
    "mask_input",  # float32[M, 1, 256, 256], M = 1 or N
    "has_mask_input",  # float32[1]
    "attention_bias",  # float32[1, 64, 64]: alpha * similarity, zeros = off
    "target_embedding",  # float32[1, C]: zeros = off
)
DECODER_OUTPUTS = (
    "masks",  # float32[N, 3, 256, 256] multimask logits
    "scores",  # float32[N, 3]
    "single_mask",  # float32[N, 1, 256, 256] the single-mask token's logits
    "single_score",  # float32[N, 1]
)


class SamEncoderModule(nn.Module):
    """float32[1, 3, 1024, 1024] normalised, zero-padded image -> float32[1, C, 64, 64] image embedding."""

    def __init__(self, sam) -> None:
        super().__init__()
        self.image_encoder = sam.image_encoder

    def forward(self, image: Tensor) -> Tensor:
        return self.image_encoder(image)


def _heads(x: Tensor, heads: int) -> Tensor:
    """[B, n, I] -> [B, heads, n, I / heads] (segment-anything's head layout: head h owns channels h*d..h*d+d)."""
    b, n, i = x.shape
    return x.reshape(b, n, heads, i // heads).transpose(1, 2)


def _merge(x: Tensor) -> Tensor:
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


def _per_head(weight: Tensor, heads: int) -> Tensor:
    """An nn.Linear weight [I, C] (C -> I) as [heads, d, C]."""
    return weight.reshape(heads, weight.shape[0] // heads, weight.shape[1])


def _attention(module, q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None = None) -> Tensor:
    """segment-anything's Attention.forward, with an optional additive bias on the logits (broadcast over
    batch, heads and queries: float[1, 1, 1, keys]). Used where keys are shared by all prompts (batch 1)."""
    q = _heads(module.q_proj(q), module.num_heads)
    k = _heads(module.k_proj(k), module.num_heads)
    v = _heads(module.v_proj(v), module.num_heads)
    attn = q @ k.transpose(-1, -2)
    attn = attn / math.sqrt(q.shape[-1])
    if bias is not None:
        attn = attn + bias
    attn = torch.softmax(attn, dim=-1)
    return module.out_proj(_merge(attn @ v))


def _token_to_image(module, q: Tensor, k: Tensor, v: Tensor, bias: Tensor) -> Tensor:
    """Token-to-image attention when every prompt has its own image tokens, reassociated for T << d_model.

    q: [N, T, C] tokens; k, v: [N, P, C] image tokens. The same function as Attention.forward, but the T queries
    are projected back into the C-dimensional input space (q_h W_k,h) instead of projecting all P keys
    (and A_h (X W_v,h) = (A_h X) W_v,h for the values): 2 * H*T*P*C multiply-adds per prompt instead of 2 * P*C*I.
    The key bias adds q.b_k, the same for every key, which softmax ignores; the value bias passes through
    because each attention row sums to one.
    """
    heads = module.num_heads
    n, t, c = q.shape
    qh = _heads(module.q_proj(q), heads)  # [N, H, T, d]
    d = qh.shape[-1]
    qk = (qh @ _per_head(module.k_proj.weight, heads)) / math.sqrt(d)  # [N, H, T, C]
    logits = (qk.reshape(n, heads * t, c) @ k.transpose(1, 2)).reshape(n, heads, t, -1) + bias
    attn = torch.softmax(logits, dim=-1)
    ax = (attn.reshape(n, heads * t, -1) @ v).reshape(n, heads, t, c)  # [N, H, T, C]
    out = ax @ _per_head(module.v_proj.weight, heads).transpose(-1, -2)  # [N, H, T, d]
    out = out + module.v_proj.bias.reshape(heads, 1, d)
    return module.out_proj(_merge(out))


def _image_to_token(module, q: Tensor, k: Tensor, v: Tensor, shared_queries: bool) -> Tensor:
    """Image-to-token attention: q: [M, P, C] image tokens (M = 1 when all prompts share them), k, v: [N, T, C].

    The output projection is folded into the T values first (sum over heads of A_h (V_h W_o,h)), so the
    per-prompt cost is H*T*P*C instead of P*I*C. With per-prompt image tokens the query projection is also
    reassociated (X (W_q,h^T k_h^T) + b_q,h k_h^T); with shared ones it is computed once.
    """
    heads = module.num_heads
    n, t, c = k.shape
    kh = _heads(module.k_proj(k), heads)  # [N, H, T, d]
    d = kh.shape[-1]
    if shared_queries:
        qh = _heads(module.q_proj(q), heads)  # [M, H, P, d]
        logits = (qh @ kh.transpose(-1, -2)).permute(0, 2, 1, 3)  # [N, P, H, T]
    else:
        kq = kh @ _per_head(module.q_proj.weight, heads)  # [N, H, T, C]
        logits = (q @ kq.reshape(n, heads * t, c).transpose(1, 2)).reshape(n, -1, heads, t)
        qb = (kh * module.q_proj.bias.reshape(heads, 1, d)).sum(-1)  # [N, H, T]
        logits = logits + qb.unsqueeze(1)
    attn = torch.softmax(logits / math.sqrt(d), dim=-1)  # over the T tokens
    vh = _heads(module.v_proj(v), heads)  # [N, H, T, d]
    w_out = module.out_proj.weight.reshape(c, heads, d).permute(1, 2, 0)  # [H, d, C]
    # Each head's attention rows sum to one, so adding bias / H to every folded value adds the output bias
    # exactly once, on T x C values instead of on all P x C outputs.
    vo = (vh @ w_out + module.out_proj.bias / heads).reshape(n, heads * t, c)  # [N, H*T, C]
    return attn.reshape(n, -1, heads * t) @ vo


def _two_way_block(block, queries: Tensor, keys: Tensor, query_pe: Tensor, key_pe: Tensor, bias: Tensor):
    """TwoWayAttentionBlock.forward. `keys` may have batch 1 (shared by all prompts: the first block) or N."""
    if block.skip_first_layer_pe:
        queries = _attention(block.self_attn, queries, queries, queries)
    else:
        q = queries + query_pe
        queries = queries + _attention(block.self_attn, q, q, queries)
    queries = block.norm1(queries)

    # segment-anything skips the PE only in the first block, the one whose image tokens are still the same for
    # every prompt: there keys and values (and the image-side queries) are projected once for all prompts.
    first = block.skip_first_layer_pe
    q = queries + query_pe
    k = keys + key_pe
    if first:
        attn_out = _attention(block.cross_attn_token_to_image, q, k, keys, bias)
    else:
        attn_out = _token_to_image(block.cross_attn_token_to_image, q, k, keys, bias)
    queries = block.norm2(queries + attn_out)
    queries = block.norm3(queries + block.mlp(queries))

    q = queries + query_pe
    k = keys + key_pe
    keys = block.norm4(keys + _image_to_token(block.cross_attn_image_to_token, k, q, queries, first))
    return queries, keys


def two_way_transformer(transformer, src: Tensor, pos: Tensor, tokens: Tensor, bias: Tensor):
    """TwoWayTransformer.forward with `bias` (float[1, 1, 1, h*w]) on every token-to-image attention.

    src: [M, C, h, w] (M = 1: one image for all prompts, or N); pos: [1, C, h, w]; tokens: [N, T, C]
    -> (tokens [N, T, C], image tokens [N, h*w, C]).
    """
    keys = src.flatten(2).permute(0, 2, 1)
    key_pe = pos.flatten(2).permute(0, 2, 1)
    queries = tokens
    for layer in transformer.layers:
        queries, keys = _two_way_block(layer, queries, keys, tokens, key_pe, bias)
    q = queries + tokens
    k = keys + key_pe
    queries = transformer.norm_final_attn(
        queries + _token_to_image(transformer.final_attn_token_to_image, q, k, keys, bias)
    )
    return queries, keys


def _upscaled_masks(upscaling, keys: Tensor, hyper: Tensor, h: int, w: int) -> Tensor:
    """MaskDecoder's output_upscaling followed by the hypernetwork product, on the token layout.

    Each stride-2, 2 x 2 transposed convolution maps one pixel to a 2 x 2 block: a matrix product per pixel. So
    the image tokens [N, h*w, C] go through two matrix products (LayerNorm2d and GELU act per pixel and channel)
    and the 4 x 4 sub-pixel blocks are put in place only for the final [N, K, 4h, 4w] logits: GEMMs instead of
    transposed convolutions, and no transposes of the wide feature maps.

    keys: [N, h*w, C]; hyper: [N, K, C/8] -> logits [N, K, 4h, 4w].
    """
    conv1, norm, act1, conv2, act2 = upscaling
    n, k = hyper.shape[0], hyper.shape[1]
    c1, c2 = conv1.out_channels, conv2.out_channels
    w1 = conv1.weight.permute(0, 2, 3, 1).reshape(conv1.in_channels, 4 * c1)  # (in) -> (a, b, out)
    y = (keys @ w1).reshape(n, h * w, 4, c1) + conv1.bias
    mean = y.mean(-1, keepdim=True)
    y = y - mean
    y = y / torch.sqrt(y.pow(2).mean(-1, keepdim=True) + norm.eps) * norm.weight + norm.bias
    y = act1(y)
    w2 = conv2.weight.permute(0, 2, 3, 1).reshape(c1, 4 * c2)  # (in) -> (c, d, out)
    y = act2((y @ w2).reshape(n, h * w * 16, c2) + conv2.bias)
    masks = (y @ hyper.transpose(1, 2)).reshape(n, h, w, 2, 2, 2, 2, k)  # i, j, a, b, c, d, token
    # Row 4i + 2a + c, column 4j + 2b + d.
    return masks.permute(0, 7, 1, 3, 5, 2, 4, 6).reshape(n, k, 4 * h, 4 * w)


class SamDecoderModule(nn.Module):
    """Batched prompt encoder + mask decoder: see DECODER_INPUTS / DECODER_OUTPUTS for names and shapes."""

    def __init__(self, sam) -> None:
        super().__init__()
        self.prompt_encoder = sam.prompt_encoder
        self.mask_decoder = sam.mask_decoder
        self.img_size = sam.image_encoder.img_size

    def _embed_points(self, coords: Tensor, labels: Tensor) -> Tensor:
        pe = self.prompt_encoder
        # Same arithmetic as PromptEncoder._embed_points (pixel centres, then / input size), without in-place
        # boolean indexing, which does not export.
        emb = pe.pe_layer._pe_encoding((coords + 0.5) / self.img_size)
        labels = labels.unsqueeze(-1)
        emb = emb * (labels != -1).to(emb.dtype) + pe.not_a_point_embed.weight * (labels == -1).to(emb.dtype)
        emb = emb + pe.point_embeddings[0].weight * (labels == 0).to(emb.dtype)
        emb = emb + pe.point_embeddings[1].weight * (labels == 1).to(emb.dtype)
        return emb

    def forward(
        self,
        image_embeddings: Tensor,
        point_coords: Tensor,
        point_labels: Tensor,
        mask_input: Tensor,
        has_mask_input: Tensor,
        attention_bias: Tensor,
        target_embedding: Tensor,
    ):
        pe, md = self.prompt_encoder, self.mask_decoder
        n = point_coords.shape[0]
        sparse = self._embed_points(point_coords, point_labels)
        dense = has_mask_input * pe.mask_downscaling(mask_input) + (1 - has_mask_input) * pe.no_mask_embed.weight.reshape(
            1, -1, 1, 1
        )

        output_tokens = torch.cat([md.iou_token.weight, md.mask_tokens.weight], dim=0)
        tokens = torch.cat([output_tokens.unsqueeze(0).expand(n, -1, -1), sparse], dim=1)
        tokens = tokens + target_embedding.unsqueeze(1)

        # Not expanded to N: the first block shares the image tokens' projections across prompts.
        src = image_embeddings + dense
        pos = pe.get_dense_pe()
        # Python ints, not traced shapes: the exported graph then has static spatial dimensions.
        h, w = pe.image_embedding_size
        bias = attention_bias.reshape(1, 1, 1, -1)
        hs, keys = two_way_transformer(md.transformer, src, pos, tokens, bias)

        iou_out = hs[:, 0, :]
        mask_tokens_out = hs[:, 1 : 1 + md.num_mask_tokens, :]
        hyper = torch.stack(
            [md.output_hypernetworks_mlps[i](mask_tokens_out[:, i, :]) for i in range(md.num_mask_tokens)], dim=1
        )
        masks = _upscaled_masks(md.output_upscaling, keys, hyper, h, w)
        iou = md.iou_prediction_head(iou_out)
        return masks[:, 1:], iou[:, 1:], masks[:, :1], iou[:, :1]
