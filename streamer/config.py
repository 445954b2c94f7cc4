"""Typed configuration, loaded from YAML. Every field has a safe default, so an empty file is valid."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from streamer.errors import UserError, first_line
from streamer.product_config import (  # noqa: F401 (re-exported)
    GateConfig, GroundingGateConfig, ProductConfig, SupportConfig, check_products,
)
from streamer.stream.config import StreamConfig


class _Section(BaseModel):
    # A misspelt key is a mistake the user wants to hear about, not a silently ignored setting.
    model_config = ConfigDict(extra="forbid")


class SamEngineConfig(_Section):
    model_dir: Path = Field(description="directory written by `persense export sam`")
    backend: Literal["onnxruntime", "tensorrt", "torch"] = "onnxruntime"


class CountrEngineConfig(_Section):
    model_dir: Path = Field(description="directory written by `persense export countr`")
    backend: Literal["onnxruntime", "tensorrt", "torch"] = "onnxruntime"


class ClassLabelConfig(_Section):
    """The paper's class-label extractor (CLE): VIP-LLaVA names the support object once per support."""

    model_dir: Path = Field(description="a Hugging Face VIP-LLaVA checkpoint directory (e.g. llava-hf/vip-llava-7b-hf)")
    device: str = Field("cpu", description="torch device: cpu, cuda, cuda:1, ...")
    max_new_tokens: int = Field(24, ge=1, le=256, description="longest answer generated")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="weights in memory: auto = the checkpoint's (float16 for vip-llava-7b-hf; a CPU may "
        "want bfloat16 or float32)"
    )


class EnginesConfig(_Section):
    """Which models run. `embedded` needs no weights; `sam` needs an exported SAM model directory."""

    segmenter: Literal["embedded", "sam"] = "embedded"
    sam: Optional[SamEngineConfig] = None
    # embedded: the CPU exemplar-correlation counter; sam-correlation: exemplar prototype correlation on SAM's
    # embedding (needs segmenter: sam); countr: the paper's DMG2.
    dmg: Literal["embedded", "sam-correlation", "countr"] = "embedded"
    countr: Optional[CountrEngineConfig] = None
    # The paper's class-label extractor; without it the label comes from support.label (or there is none).
    cle: Optional[ClassLabelConfig] = None


class PipelineConfig(_Section):
    """The PerSense algorithm's parameters; defaults are the paper's."""

    idm_threshold: int = Field(30, ge=0, le=255, description="IDM binary threshold T on the 0-255 density image")
    idm_keep_composite_centroid: bool = Field(
        True, description="IDM: prompt at a split composite contour's own centroid too (Algorithm 3, line 23)"
    )
    ppsm_k: float = Field(math.sqrt(2), gt=0, description="PPSM normalisation constant k")
    feedback_iterations: int = Field(1, ge=0, le=8, description="DMG/IDM/PPSM/decoder re-runs with mask exemplars")
    feedback_exemplars: int = Field(4, ge=1, le=16, description="top masks by score used as the DMG's exemplars")
    target_guidance: bool = Field(True, description="pass PerSAM guidance to decoders that support it (first pass)")
    duplicate_iou: float = Field(0.5, gt=0, le=1, description="masks overlapping more than this are one object")
    min_mask_area: int = Field(4, ge=0, le=10**9, description="masks smaller than this many frame pixels are dropped")
    min_score: float = Field(0.0, ge=0, le=1, description="masks scoring below this are dropped")
    max_prompts: int = Field(1024, ge=1, le=16_384, description="cap on point prompts decoded per pass")
    presence_threshold: Optional[float] = Field(
        0.4, ge=-1.0, le=1.0,
        description="a frame whose objects' median match quality (1: as alike as the support to itself, 0: "
        "unrelated) is below this counts 0; null: never",
    )
    feedback_quality_margin: float = Field(
        0.1, ge=0.0, le=2.0,
        description="a feedback pass whose match quality is more than this below the first pass's is discarded",
    )
    initial_exemplars: int = Field(
        3, ge=1, le=16,
        description="exemplars of the first DMG pass: P_max (Eq. 1) and the next most support-like places "
        "(1: P_max alone, as the paper)",
    )
    exemplar_size_tolerance: float = Field(
        1.3, ge=1.0, le=100.0,
        description="the initial exemplar is the mask decoded at the prior when its size is within this factor of "
        "the support object's, else a support-sized box there",
    )
    mask_size_tolerance: float = Field(
        2.0, ge=1.0, le=100.0,
        description="masks larger than this factor of the exemplars' size (leaks, merged clumps) are no object",
    )
    scale_check_interval_s: float = Field(
        60.0, ge=0.0, le=86_400.0,
        description="how often a stream checks that its objects are still at the support's scale (a zoomed or moved "
        "camera), seconds; also on a new support or frame size; 0: every frame",
    )


class Config(_Section):
    engines: EnginesConfig = EnginesConfig()
    pipeline: PipelineConfig = PipelineConfig()
    gate: GateConfig = GateConfig()
    support: SupportConfig = SupportConfig()
    products: Optional[list[ProductConfig]] = Field(
        None, max_length=64, description="several products (docs/products.md): for `persense segment`, and for every "
        "camera without a support or products of its own; the first is the default one. Instead of support")
    # The stream processor's settings (sources, publishing, control, metrics) live in their own model.
    stream: StreamConfig = Field(default_factory=StreamConfig)

    @model_validator(mode="after")
    def _products_listed_well(self):
        check_products(self.products, self.support.image is not None, self.stream.max_products)
        return self


def read_yaml_mapping(path: Path, what: str) -> dict:
    """A YAML file whose top level is a mapping -> that mapping (empty for an empty file); UserError with one line
    naming `what` (e.g. "config"), the file and the problem."""
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise UserError(f"{what} file not found: {path}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" line {mark.line + 1}, column {mark.column + 1}:" if mark is not None else ""
        raise UserError(f"cannot read {what} {path}:{where} {exc.problem or first_line(exc)}") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise UserError(f"cannot read {what} {path}: {first_line(exc)}") from None
    if not isinstance(raw, dict):
        raise UserError(f"{what} {path}: the top level must be a mapping")
    return raw


def load_config(path: Path | str | None) -> Config:
    """Read a YAML file into a Config; relative model paths are taken relative to the file's folder.

    Raises UserError with one line naming the file and the problem.
    """
    if path is None:
        return Config()
    path = Path(path)
    raw = read_yaml_mapping(path, "config")
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        hint = did_you_mean(Config, first["loc"]) if first["type"] == "extra_forbidden" else ""
        raise UserError(f"config {path}: {where}: {first['msg']}{hint} ({exc.error_count()} problem(s))") from None
    _resolve_paths(config, path.parent)
    return config


def did_you_mean(model: type[BaseModel], loc: tuple) -> str:
    """' (did you mean 'x'?)' for a misspelt key at `loc` (a pydantic error's location), naming the closest key
    of the section it is in; '' where none is close."""
    import difflib
    import typing

    for part in loc[:-1]:
        if isinstance(part, int):
            continue  # an item of a list: its model is the list's
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return ""
        # The section's model: the annotation itself, or inside Optional[...] / list[...].
        candidates = [field.annotation, *typing.get_args(field.annotation)]
        candidates += [inner for c in list(candidates) for inner in typing.get_args(c)]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if model is None:
            return ""
    close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _resolve_paths(config: Config, base: Path) -> None:
    for section in (config.engines.sam, config.engines.countr, config.engines.cle, config.gate.grounding):
        if section is not None and not section.model_dir.is_absolute():
            candidate = base / section.model_dir
            # Relative model dirs: beside the config file where they exist there, else from the working
            # directory (which an error then names).
            if candidate.exists():
                section.model_dir = candidate
    for attr in ("image", "mask"):
        value = getattr(config.support, attr)
        if value is not None and not value.is_absolute() and not value.exists() and (base / value).exists():
            setattr(config.support, attr, base / value)
