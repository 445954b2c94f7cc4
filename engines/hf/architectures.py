"""The published architectures' configurations, written out so that their cost can be measured without a download.

grounding_dino_tiny_config(): IDEA-Research/grounding-dino-tiny's architecture (its config.json's values, from the
model card): Swin-T backbone (embed 96, depths 2-2-6-2, heads 3-6-12-24, window 7, stages 2-4 out), BERT-base-uncased
text encoder, d_model 256, 900 queries, 6 encoder and 6 decoder layers, 4 feature levels, 4 sampling points.
"""

from __future__ import annotations


def grounding_dino_tiny_config():
    from transformers import BertConfig, GroundingDinoConfig, SwinConfig

    backbone = SwinConfig(
        embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], window_size=7, image_size=224,
        out_indices=[2, 3, 4], out_features=["stage2", "stage3", "stage4"],
    )
    text = BertConfig(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                      intermediate_size=3072)
    return GroundingDinoConfig(
        backbone_config=backbone, text_config=text, d_model=256, num_queries=900, encoder_layers=6,
        decoder_layers=6, encoder_ffn_dim=2048, decoder_ffn_dim=2048, num_feature_levels=4, encoder_n_points=4,
        decoder_n_points=4, max_text_len=256, two_stage=True,
    )
