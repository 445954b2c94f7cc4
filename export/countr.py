"""`persense export countr`: CounTR's FSC-147 checkpoint -> DIR/countr.onnx (+ TensorRT engine) + DIR/manifest.json.

The graph takes all windows of a frame and its exemplar groups in one call:
    windows float32[B, 3, 384, 384], exemplars float32[G, S, 3, 64, 64] -> density float32[G, B, 384, 384]
(B, G, S dynamic). Pre- and post-processing (resize, crops, windows, stitching) stay outside, in engines.countr.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from engines.outputs import check_output_dir, make_output_dir
from engines.errors import EngineError, UserError

log = logging.getLogger(__name__)

DEFAULT_OPSET = 18
# TensorRT profile: all windows of a 640 x 480 frame in tiled mode (9 tiles x 2 windows) fit one call.
TRT_MAX_WINDOWS = 18
TRT_OPT_WINDOWS = 2
TRT_MAX_GROUPS = 2
# Normalisations stay in FP32 under --fp16 as for SAM, plus GroupNorm / InstanceNorm of the density head and
# exemplar encoder, whose variance sums over many pixels.
FP32_OP_TYPES = ("LayerNormalization", "Softmax", "ReduceMean", "Pow", "Sqrt", "InstanceNormalization",
                 "GroupNormalization")


def add_arguments(parser) -> None:
    parser.add_argument("--checkpoint", type=Path, required=True, help="CounTR FSC-147 checkpoint (FSC147.pth)")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--tensorrt", action="store_true", help="also build a TensorRT engine (needs a GPU)")
    parser.add_argument("--fp16", action="store_true", help="TensorRT engine in FP16 (normalisations kept in FP32)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help="ONNX opset (default %(default)s)")
    parser.add_argument("--max-windows", type=int, default=TRT_MAX_WINDOWS,
                        help="TensorRT profile: most windows per call (default %(default)s)")
    parser.add_argument("--timing-cache", type=Path, default=None, help="TensorRT timing cache file")


def run(args) -> int:
    if args.fp16 and not args.tensorrt:
        raise UserError("--fp16 applies to the TensorRT engine: add --tensorrt")
    if args.max_windows < 1:
        raise UserError("--max-windows must be at least 1")
    check_output_dir(args.out)
    from engines.countr.checkpoint import load_countr

    model = load_countr(args.checkpoint)
    manifest_path = export_countr(model, args.out, checkpoint=args.checkpoint, opset=args.opset)
    log.info("wrote %s", manifest_path)
    if args.tensorrt:
        engine = build_countr_engine(args.out, fp16=args.fp16, max_windows=args.max_windows,
                                     timing_cache=args.timing_cache)
        log.info("wrote %s", engine)
    return 0


def export_onnx(model, path: Path, opset: int = DEFAULT_OPSET) -> None:
    """Export `model` (engines.countr.model.CounTR) to one self-contained ONNX file with dynamic B, G and S.

    torch.export-based exporter; ViT-B is ~0.4 GB, under protobuf's 2 GB, so the weights stay inside the file.
    """
    import torch

    spec = model.spec
    # Example sizes above 1, so that no dynamic dimension is specialised to 1 while tracing.
    windows = torch.rand(2, 3, spec.img_size, spec.img_size)
    exemplars = torch.rand(2, 3, 3, spec.exemplar_size, spec.exemplar_size)
    dims = {name: torch.export.Dim(name, min=1) for name in ("windows", "groups", "shots")}
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.inference_mode(False), torch.no_grad():
        try:
            import onnxscript  # noqa: F401  (the torch.export-based exporter needs it)
        except ImportError:
            raise UserError("ONNX export needs onnxscript: pip install 'persense-stream[sam]'") from None
        program = torch.onnx.export(
            model.eval(),
            (windows, exemplars),
            dynamo=True,
            opset_version=opset,
            input_names=["windows", "exemplars"],
            output_names=["density"],
            dynamic_shapes={
                "windows": {0: dims["windows"]},
                "exemplars": {0: dims["groups"], 1: dims["shots"]},
            },
            verbose=False,
        )
        program.save(str(path), external_data=False)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _versions() -> dict[str, str]:
    import onnx
    import torch

    from importlib.metadata import PackageNotFoundError, version

    try:
        persense = version("persense-stream")
    except PackageNotFoundError:  # run from a source tree that is not installed
        persense = "unknown"
    return {"persense": persense, "torch": torch.__version__, "onnx": onnx.__version__}


def export_countr(model, out_dir: Path | str, checkpoint: Path | str | None, opset: int = DEFAULT_OPSET) -> Path:
    """Write DIR/countr.onnx and DIR/manifest.json for `model`; -> the manifest's path. TensorRT engines of an
    earlier export in DIR are deleted.

    `checkpoint` is recorded (absolute) so the torch backend can load the same weights.
    """
    from engines.countr import preprocess as pre
    from engines.countr import windows as win
    from engines.countr.manifest import FORMAT, MODEL_TYPE, ONNX_NAME, write_manifest
    from export.tensorrt import remove_stale_engines

    out_dir = make_output_dir(out_dir)
    onnx_path = out_dir / ONNX_NAME
    # Engines built from an earlier export hold its weights; the new manifest names none until --tensorrt.
    remove_stale_engines(out_dir)
    log.info("exporting CounTR to %s", onnx_path)
    export_onnx(model, onnx_path, opset)
    spec = model.spec
    manifest: dict[str, Any] = {
        "model_type": MODEL_TYPE,
        "format": FORMAT,
        "onnx": ONNX_NAME,
        "checkpoint": str(Path(checkpoint).resolve()) if checkpoint else None,
        "spec": spec.to_dict(),
        "opset": opset,
        "inputs": {
            "windows": ["B", 3, spec.img_size, spec.img_size],
            "exemplars": ["G", "S", 3, spec.exemplar_size, spec.exemplar_size],
        },
        "outputs": {"density": ["G", "B", spec.img_size, spec.img_size]},
        "preprocess": {
            "input_size": pre.INPUT_SIZE,
            "width_multiple": pre.WIDTH_MULTIPLE,
            "pixel_scale": "x / 255, no mean/std",
            "exemplar_size": pre.EXEMPLAR_SIZE,
            "window_stride": win.STRIDE,
            "density_scale": pre.DENSITY_SCALE,
            "tiny_exemplar_px": pre.TINY_EXEMPLAR_PX,
            "tiles": pre.TILES,
        },
        "versions": _versions(),
        "sha256": {ONNX_NAME: _sha256(onnx_path)},
    }
    return write_manifest(out_dir, manifest)


def build_countr_engine(
    out_dir: Path | str,
    fp16: bool = False,
    max_windows: int = TRT_MAX_WINDOWS,
    max_groups: int = TRT_MAX_GROUPS,
    timing_cache: Path | str | None = None,
) -> Path:
    """Build the TensorRT engine for DIR/countr.onnx and record it in the manifest (the runtime loads exactly the
    engine recorded there); -> the engine path."""
    from engines.countr.manifest import ENGINE_STEM, onnx_checksum, read_manifest, write_manifest
    from export.tensorrt import build_engine, profile_description

    out_dir = Path(out_dir)
    manifest = read_manifest(out_dir)
    onnx_path = out_dir / manifest["onnx"]
    checksum = onnx_checksum(out_dir, manifest)
    # The engine is named by this checksum: it must be the file's.
    if not onnx_path.is_file() or _sha256(onnx_path) != checksum:
        raise EngineError(f"{onnx_path} is missing or does not match its manifest checksum: re-run "
                          "`persense export countr`")
    size = manifest["spec"]["img_size"]
    ex = manifest["spec"]["exemplar_size"]
    opt_windows = min(TRT_OPT_WINDOWS, max_windows)
    profiles = {
        "windows": ((1, 3, size, size), (opt_windows, 3, size, size), (max_windows, 3, size, size)),
        "exemplars": ((1, 1, 3, ex, ex), (1, 3, 3, ex, ex), (max_groups, 3, 3, ex, ex)),
    }
    engine = build_engine(
        onnx_path, out_dir, ENGINE_STEM, profiles, fp16=fp16, fp32_op_types=FP32_OP_TYPES,
        timing_cache=timing_cache if timing_cache else out_dir / "timing.cache", onnx_sha256=checksum,
    )
    manifest["tensorrt"] = {
        "profile": profile_description(profiles, fp16),
        "fp16": fp16,
        "max_windows": max_windows,
        "max_groups": max_groups,
        "engine": engine.name,
    }
    write_manifest(out_dir, manifest)
    return engine
