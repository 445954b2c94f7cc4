"""Build TensorRT engines from ONNX files: dynamic-shape profiles, strongly typed networks (FP16 from a
mixed-precision copy of the graph, numerically fragile ops kept in FP32), a timing cache, and engine files named by
GPU / TensorRT version / profile / ONNX checksum (see engines.trt)."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Mapping, Sequence

from engines.ort import ORT_TRT_CACHE
from engines.trt import engine_file_name, import_tensorrt, onnx_digest, require_cuda
from engines.errors import EngineError

log = logging.getLogger(__name__)

Shape = Sequence[int]
# ONNX op types computed in FP32 under --fp16: SAM's LayerNorm (and the LayerNorm2d that exports as
# ReduceMean/Pow/Sqrt) and softmax overflow in FP16.
DEFAULT_FP32_OP_TYPES = ("LayerNormalization", "Softmax", "ReduceMean", "Pow", "Sqrt")


def remove_stale_engines(model_dir: Path | str) -> list[str]:
    """Delete the TensorRT engines (ours and ONNX Runtime's cache) in a directory about to get a new ONNX export.

    They hold the old weights: an engine is a compiled copy of the network, and ONNX Runtime keys its cache by
    the graph, not the weights. Returns the names removed.
    """
    model_dir = Path(model_dir)
    removed = []
    for path in sorted(model_dir.glob("*.engine")):
        if path.is_file():
            path.unlink()
            removed.append(path.name)
    cache = model_dir / ORT_TRT_CACHE
    if cache.is_dir():
        shutil.rmtree(cache)
        removed.append(cache.name + "/")
    if removed:
        log.info("removed TensorRT engines of the previous export: %s", ", ".join(removed))
    return removed


def file_digest(onnx_path: Path) -> str:
    """`onnx_digest` of an ONNX file and its external data file `<name>.data` where there is one."""
    files = [onnx_path] + [p for p in (onnx_path.with_name(onnx_path.name + ".data"),) if p.is_file()]
    checksums = []
    for path in files:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                digest.update(block)
        checksums.append(digest.hexdigest())
    return onnx_digest(checksums)


def profile_description(profiles: Mapping[str, tuple[Shape, Shape, Shape]], fp16: bool) -> str:
    """A short, file-name-safe summary of the dynamic dimensions and precision, e.g. 'n1-64-512.fp16'."""
    parts = []
    for name in sorted(profiles):
        lo, opt, hi = (tuple(int(d) for d in s) for s in profiles[name])
        for axis, (a, b, c) in enumerate(zip(lo, opt, hi)):
            if not a == b == c:
                parts.append(f"{name}{axis}-{a}-{b}-{c}")
    desc = "_".join(parts) or "static"
    return f"{desc}.{'fp16' if fp16 else 'fp32'}"


def _strongly_typed_flags(trt) -> int:
    """Network creation flags: strongly typed (tensor types come from the graph). TensorRT 10 needs the flag to
    honour a mixed-precision graph; TensorRT 11 is always strongly typed and ignores it (a later release may drop
    it)."""
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if flag is not None:
        return 1 << int(flag)
    if int(trt.__version__.split(".")[0]) >= 11:
        return 0
    raise EngineError(f"TensorRT {trt.__version__} has no strongly typed networks: install TensorRT 10 or newer")


def _use_timing_cache(config, cache_bytes: bytes) -> bool:
    """Give the builder a timing cache made from `cache_bytes`; False where TensorRT rejects them."""
    try:
        cache = config.create_timing_cache(cache_bytes)
    except Exception as exc:  # noqa: BLE001 - the bindings raise their own types for a foreign cache
        log.debug("timing cache rejected: %s", exc)
        return False
    return cache is not None and bool(config.set_timing_cache(cache, ignore_mismatch=False))


def build_engine(
    onnx_path: Path | str,
    out_dir: Path | str,
    stem: str,
    profiles: Mapping[str, tuple[Shape, Shape, Shape]],
    fp16: bool = False,
    fp32_op_types: Sequence[str] = DEFAULT_FP32_OP_TYPES,
    timing_cache: Path | str | None = None,
    workspace_gib: float = 4.0,
    force: bool = False,
    onnx_sha256: str | None = None,
) -> Path:
    """Build (or reuse) a TensorRT engine for an ONNX model.

    Args:
        onnx_path: the model (external data beside it is found by the parser).
        out_dir: where the engine goes; its name comes from `engines.trt.engine_file_name`.
        stem: the engine's base name, e.g. 'decoder'.
        profiles: input name -> (min, opt, max) shapes for each input with dynamic dimensions.
        fp16: build from a mixed-precision copy of the graph (export.precision): FP16 but for the ops of
            `fp32_op_types`, inputs and outputs FP32.
        timing_cache: file to read and update with kernel timings (speeds up later builds).
        force: rebuild even if an engine of that name exists.
        onnx_sha256: the export's checksum from its manifest (`engines.trt.onnx_digest` where the weights are
            external data), which goes into the engine's name; default: computed from the file(s).

    Returns:
        The engine file's path.

    Raises:
        EngineError: no TensorRT, no GPU, a parse failure or a failed build (one line).
    """
    trt = import_tensorrt()
    require_cuda()
    onnx_path, out_dir = Path(onnx_path), Path(out_dir)
    if not onnx_path.is_file():
        raise EngineError(f"ONNX model not found: {onnx_path}")
    out_dir.mkdir(parents=True, exist_ok=True)
    digest = onnx_sha256 or file_digest(onnx_path)
    target = out_dir / engine_file_name(stem, profile_description(profiles, fp16), onnx_sha256=digest,
                                        trt_version=trt.__version__)
    if target.is_file() and not force:
        log.info("engine %s exists; reusing it", target.name)
        return target

    scratch = tempfile.TemporaryDirectory(dir=out_dir, prefix=".fp16-") if fp16 else contextlib.nullcontext()
    with scratch as scratch_dir:
        source = onnx_path
        if fp16:
            from export.precision import convert_to_fp16

            # The FP16 copy lives only for the build: the engine is named by the FP32 export it derives from.
            source = convert_to_fp16(onnx_path, Path(scratch_dir) / onnx_path.name, fp32_op_types)
        serialized, config = _build(trt, source, profiles, timing_cache, workspace_gib)
    tmp = target.with_suffix(".partial")
    tmp.write_bytes(bytes(serialized))
    tmp.replace(target)
    if timing_cache:
        cache_path = Path(timing_cache)
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        cache_path.write_bytes(bytes(config.get_timing_cache().serialize()))
    return target


def _build(trt, onnx_path: Path, profiles, timing_cache, workspace_gib: float):
    """Parse and build one strongly typed network -> (serialized engine, builder config)."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(_strongly_typed_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineError(f"TensorRT cannot parse {onnx_path.name}: {errors[:300]}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    if profiles:
        profile = builder.create_optimization_profile()
        for name, (lo, opt, hi) in profiles.items():
            profile.set_shape(name, tuple(lo), tuple(opt), tuple(hi))
        config.add_optimization_profile(profile)

    cache_path = Path(timing_cache) if timing_cache else None
    cache_bytes = cache_path.read_bytes() if cache_path and cache_path.is_file() else b""
    if not _use_timing_cache(config, cache_bytes) and cache_bytes:
        # Kernel timings of another TensorRT version or GPU: start afresh rather than fail the build.
        log.warning("ignoring the TensorRT timing cache %s (another TensorRT version or GPU)", cache_path)
        _use_timing_cache(config, b"")

    log.info("building TensorRT engine from %s (this takes minutes)", onnx_path.name)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineError(f"TensorRT failed to build an engine from {onnx_path.name} (see the log above)")
    return serialized, config
