"""Build the engine set a configuration asks for. The only place that knows which runtime serves which role."""

from __future__ import annotations

from streamer.config import ClassLabelConfig, EnginesConfig, GroundingGateConfig
from engines.errors import UserError

from engines.interfaces import ClassLabelExtractor, EngineSet, TextPromptedDetector


def build_engines(config: EnginesConfig) -> EngineSet:
    """EnginesConfig -> EngineSet; runtimes are imported only when asked for, so CPU-only installs stay light."""
    if config.segmenter == "embedded":
        from engines.embedded import build_embedded_engines

        engines = build_embedded_engines()
    else:
        if config.sam is None:
            raise UserError("engines.segmenter is 'sam' but engines.sam.model_dir is not set")
        from engines.sam import build_sam_engines

        engines = build_sam_engines(config.sam.model_dir, config.sam.backend)

    if config.dmg == "embedded":
        if config.segmenter != "embedded":
            from engines.embedded import build_embedded_dmg

            engines.dmg = build_embedded_dmg()
            engines.name += "+embedded-dmg"
    elif config.dmg == "sam-correlation":
        if config.segmenter != "sam":
            raise UserError("engines.dmg 'sam-correlation' needs engines.segmenter: sam")
    elif config.dmg == "countr":
        if config.countr is None:
            raise UserError("engines.dmg is 'countr' but engines.countr.model_dir is not set")
        from engines.countr import build_countr_dmg

        engines.dmg = build_countr_dmg(config.countr.model_dir, config.countr.backend)
        engines.name += "+countr"
    return engines


def build_label_extractor(config: ClassLabelConfig | None) -> ClassLabelExtractor | None:
    """The class-label extractor the configuration asks for (VIP-LLaVA on torch), or None."""
    if config is None:
        return None
    from engines.hf.vipllava import VipLlavaLabelExtractor

    return VipLlavaLabelExtractor(config.model_dir, config.device, config.max_new_tokens, config.dtype)


def build_grounding_detector(config: GroundingGateConfig) -> TextPromptedDetector:
    """Grounding DINO on torch (a Hugging Face checkpoint directory) or on ONNX Runtime (an export of it)."""
    if config.backend == "torch":
        from engines.hf.grounding import GroundingDinoDetector

        return GroundingDinoDetector(config.model_dir, config.box_threshold, config.text_threshold, config.device)
    from engines.hf.grounding_onnx import OnnxGroundingDetector

    return OnnxGroundingDetector(config.model_dir, config.box_threshold, config.text_threshold)
