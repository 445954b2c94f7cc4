"""Build the engine set a configuration asks for. The only place that knows which runtime serves which role."""

from __future__ import annotations

from streamer.config import EnginesConfig
from engines.errors import UserError

from engines.interfaces import EngineSet


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
