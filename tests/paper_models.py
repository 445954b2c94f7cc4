"""Tiny random Hugging Face checkpoints of the paper's transformers models, written with save_pretrained: the real
model classes and processors, with small configurations and locally built tokenizers (nothing is downloaded)."""

from __future__ import annotations

from pathlib import Path

# The tiny BERT WordPiece vocabulary of the grounding detector's tokenizer.
GROUNDING_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "all", "potato", "bolt", "nut", "a", "the"]


def write_tiny_grounding_dino(directory: Path, seed: int = 0, num_queries: int = 30) -> Path:
    """A GroundingDinoForObjectDetection with random weights (Swin + BERT, d_model 32) and its processor."""
    import torch
    from transformers import (BertConfig, BertTokenizer, GroundingDinoConfig, GroundingDinoForObjectDetection,
                              GroundingDinoImageProcessor, GroundingDinoProcessor, SwinConfig)

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    vocab = directory / "vocab.txt"
    vocab.write_text("\n".join(GROUNDING_VOCAB) + "\n")
    tokenizer = BertTokenizer(str(vocab))
    backbone = SwinConfig(embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], window_size=4, image_size=64,
                          out_indices=[2, 3, 4], out_features=["stage2", "stage3", "stage4"])
    text = BertConfig(vocab_size=len(GROUNDING_VOCAB), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=32, max_position_embeddings=64)
    config = GroundingDinoConfig(
        backbone_config=backbone, text_config=text, d_model=32, encoder_layers=1, decoder_layers=2,
        encoder_ffn_dim=32, decoder_ffn_dim=32, encoder_attention_heads=2, decoder_attention_heads=2,
        num_queries=num_queries, max_text_len=32, encoder_n_points=2, decoder_n_points=2,
    )
    torch.manual_seed(seed)
    GroundingDinoForObjectDetection(config).eval().save_pretrained(directory)
    image_processor = GroundingDinoImageProcessor(size={"shortest_edge": 64, "longest_edge": 96})
    GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(directory)
    return directory


def write_tiny_vipllava(directory: Path, first_word: str = "potato", seed: int = 0) -> Path:
    """A VipLlavaForConditionalGeneration with random weights (CLIP vision + LLaMA, width 16), its processor with a
    word-level tokenizer, and a final norm of zero: every logit is 0, so greedy decoding always answers with token
    0, `first_word` (repeated) - a known answer from random weights."""
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import (CLIPImageProcessor, CLIPVisionConfig, LlamaConfig, LlavaProcessor,
                              PreTrainedTokenizerFast, VipLlavaConfig, VipLlavaForConditionalGeneration)

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rest = ["<unk>", "<s>", "</s>", "<pad>", "<image>", "the", "object", "in", "image", "is", "a", "?", "name", "###",
            "human", ":", "assistant"]
    words = [first_word] + [w for w in rest if w != first_word]
    if words.index("<image>") != 5 or words.index("<pad>") != 4:
        raise ValueError(f"first_word {first_word!r} would move the special tokens")
    core = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                        pad_token="<pad>", extra_special_tokens={"image_token": "<image>"})
    vision = CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                              image_size=28, patch_size=14, projection_dim=16)
    text = LlamaConfig(vocab_size=len(words), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                       num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256, bos_token_id=2,
                       eos_token_id=3, pad_token_id=4)
    config = VipLlavaConfig(vision_config=vision, text_config=text, image_token_index=5, vision_feature_layers=[-2, -1])
    torch.manual_seed(seed)
    model = VipLlavaForConditionalGeneration(config).eval()
    with torch.no_grad():
        model.model.language_model.norm.weight.zero_()
    model.save_pretrained(directory)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28})
    LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=14,
                   vision_feature_select_strategy="default", num_additional_image_tokens=1,
                   image_token="<image>").save_pretrained(directory)
    return directory
