"""`persense setup`: from a model name to a ready configuration. Fetches what the cache lacks, exports the ONNX
models (and TensorRT engines) with the `export` package, and writes OUT/config.yaml naming them."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from engines.outputs import check_output_dir
from streamer.config import load_config
from streamer.errors import UserError
from streamer.models.cache import CachedModel, write_atomic
from streamer.models.catalogue import Catalogue, ModelEntry
from streamer.models.download import fetch

log = logging.getLogger(__name__)

CONFIG_NAME = "config.yaml"
SETUP_RECORD = "setup.json"
COUNTR_DIR = "countr"


@dataclass(frozen=True)
class SetupPlan:
    """What `setup` builds: a SAM segmenter, optionally CounTR as the density map generator."""

    sam: ModelEntry
    countr: ModelEntry | None
    out_dir: Path
    tensorrt: bool = False
    fp16: bool = False

    @property
    def config_path(self) -> Path:
        return self.out_dir / CONFIG_NAME


def plan_setup(catalogue: Catalogue, name: str, dmg: Literal["sam-correlation", "countr"], out_dir: Path,
               tensorrt: bool = False, fp16: bool = False) -> SetupPlan:
    """Check the request before anything is downloaded or exported; UserError (one line) when it cannot work."""
    sam = catalogue.get(name)
    if sam.kind != "sam":
        segmenters = ", ".join(e.name for e in catalogue if e.kind == "sam")
        raise UserError(f"setup takes a segmenter ({segmenters}); add CounTR with --dmg countr")
    countr = None
    if dmg == "countr":
        countr = next((e for e in catalogue if e.kind == "countr"), None)
        if countr is None:
            raise UserError("the catalogue has no CounTR model for --dmg countr")
    if fp16 and not tensorrt:
        raise UserError("--fp16 applies to TensorRT engines: add --tensorrt")
    check_output_dir(out_dir)
    if tensorrt:
        # Before minutes of download and export: can engines be built here at all?
        from engines.trt import import_tensorrt, require_cuda

        import_tensorrt()
        require_cuda()
    return SetupPlan(sam, countr, out_dir, tensorrt, fp16)


def run_setup(plan: SetupPlan, cache_root: Path, progress: bool = True) -> Path:
    """Fetch, export (unless OUT already holds this export of the same checkpoint), write the configuration;
    -> its path."""
    exports = [(plan.sam, plan.out_dir / plan.sam.name, export_sam)]
    if plan.countr is not None:
        exports.append((plan.countr, plan.out_dir / COUNTR_DIR, export_countr_model))
    checkpoints = {entry.name: fetch(CachedModel(entry, cache_root), progress=progress) for entry, _, _ in exports}
    for entry, out, export in exports:
        record = {"name": entry.name, "architecture": entry.architecture, "tensorrt": plan.tensorrt,
                  "fp16": plan.fp16, "checkpoint_sha256": CachedModel(entry, cache_root).metadata().get("sha256")}
        if _recorded(out) == record:
            log.info("%s: %s already holds this export", entry.name, out)
            continue
        (out / SETUP_RECORD).unlink(missing_ok=True)
        export(entry, checkpoints[entry.name], out, plan.tensorrt, plan.fp16)
        write_atomic(out / SETUP_RECORD, json.dumps(record, indent=2).encode())
    write_config(plan)
    return plan.config_path


def _recorded(out: Path) -> dict:
    """What the last completed setup exported into `out` ({} when none): a re-run skips a finished export."""
    try:
        data = json.loads((out / SETUP_RECORD).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def export_sam(entry: ModelEntry, checkpoint: Path, out: Path, tensorrt: bool, fp16: bool) -> None:
    from export.sam import DEFAULT_MAX_PROMPTS, DEFAULT_OPT_PROMPTS, build_tensorrt, load_model
    from export.sam_onnx import export_onnx

    log.info("exporting %s to %s (minutes on a CPU)", entry.name, out)
    sam, info = load_model(entry.architecture, checkpoint, None, out)
    export_onnx(sam, entry.architecture, out, checkpoint_info=info)
    del sam
    if tensorrt:
        build_tensorrt(out, fp16, DEFAULT_OPT_PROMPTS, DEFAULT_MAX_PROMPTS, None)


def export_countr_model(entry: ModelEntry, checkpoint: Path, out: Path, tensorrt: bool, fp16: bool) -> None:
    from engines.countr.checkpoint import load_countr
    from engines.countr.model import TINY_SPEC, CountrSpec
    from export.countr import build_countr_engine, export_countr

    specs = {"fsc147": CountrSpec(), "tiny": TINY_SPEC}
    if entry.architecture not in specs:
        raise UserError(f"{entry.name}: unknown CounTR architecture {entry.architecture!r}")
    log.info("exporting %s to %s", entry.name, out)
    export_countr(load_countr(checkpoint, specs[entry.architecture]), out, checkpoint=checkpoint)
    if tensorrt:
        build_countr_engine(out, fp16=fp16)


def write_config(plan: SetupPlan) -> None:
    """OUT/config.yaml: the exported models (paths relative to the file), the paper's pipeline defaults."""
    backend = "tensorrt" if plan.tensorrt else "onnxruntime"
    engines: dict = {"segmenter": "sam", "sam": {"model_dir": plan.sam.name, "backend": backend}}
    if plan.countr is not None:
        engines |= {"dmg": "countr", "countr": {"model_dir": COUNTR_DIR, "backend": backend}}
    else:
        engines["dmg"] = "sam-correlation"
    config = {"engines": engines, "pipeline": {"target_guidance": True}}
    header = (f"# Written by `persense setup {plan.sam.name}`"
              + (" --dmg countr" if plan.countr else "") + (" --tensorrt" if plan.tensorrt else "")
              + (" --fp16" if plan.fp16 else "") + ".\n"
              + "# Model directories are relative to this file. Licences: "
              + "; ".join(f"{e.name} {e.licence}" for e in (plan.sam, plan.countr) if e) + ".\n")
    plan.config_path.write_text(header + yaml.safe_dump(config, sort_keys=False))
    load_config(plan.config_path)  # what setup writes must load: fail here, not at the user's first run


def run_command(plan: SetupPlan) -> str:
    return f"persense run --config {plan.config_path} --source URI --support IMAGE --support-mask MASK"
