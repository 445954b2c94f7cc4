"""Build TensorRT engines from ONNX files: dynamic-shape profiles, FP16 with numerically fragile layers kept in
FP32, a timing cache, and engine files named by GPU / TensorRT version / profile / ONNX checksum (see engines.trt)."""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path
from typing import Mapping, Sequence

from engines.ort import ORT_TRT_CACHE
from engines.trt import engine_file_name, import_tensorrt, onnx_digest, require_cuda
from streamer.errors import EngineError

log = logging.getLogger(__name__)

Shape = Sequence[int]
# ONNX op types whose TensorRT layers stay in FP32 under --fp16: SAM's LayerNorm (and the LayerNorm2d that
# exports as ReduceMean/Pow/Sqrt) and softmax overflow in FP16.
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


def _fp32_node_names(onnx_path: Path, op_types: Sequence[str]) -> set[str]:
    """Names of the ONNX nodes of the given op types (weights are not loaded)."""
    if not op_types:
        return set()
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    wanted = set(op_types)
    return {node.name for node in model.graph.node if node.op_type in wanted and node.name}


def _keep_fp32(trt, network, node_names: set[str], op_types: Sequence[str]) -> int:
    """Pin the layers that come from `node_names` (or are of a matching TensorRT type) to FP32."""
    type_map = {"LayerNormalization": "NORMALIZATION", "Softmax": "SOFTMAX", "ReduceMean": "REDUCE"}
    layer_types = {getattr(trt.LayerType, type_map[t]) for t in op_types if t in type_map
                   and hasattr(trt.LayerType, type_map[t])}
    pinned = 0
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        # The ONNX parser names layers after their node, with suffixes where one node becomes several layers.
        from_node = layer.name in node_names or any(layer.name.startswith(n + "_") for n in node_names)
        if from_node or layer.type in layer_types:
            layer.precision = trt.float32
            for k in range(layer.num_outputs):
                if layer.get_output(k).dtype in (trt.float16, trt.float32):
                    layer.set_output_type(k, trt.float32)
            pinned += 1
    return pinned


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
        fp16: enable FP16 kernels; layers from `fp32_op_types` nodes stay in FP32.
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

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH") and int(trt.__version__.split(".")[0]) < 10:
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineError(f"TensorRT cannot parse {onnx_path.name}: {errors[:300]}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
        pinned = _keep_fp32(trt, network, _fp32_node_names(onnx_path, fp32_op_types), fp32_op_types)
        flag = getattr(trt.BuilderFlag, "OBEY_PRECISION_CONSTRAINTS", None)
        if flag is not None:
            config.set_flag(flag)
        log.info("%s: %d layers kept in FP32", stem, pinned)

    if profiles:
        profile = builder.create_optimization_profile()
        for name, (lo, opt, hi) in profiles.items():
            profile.set_shape(name, tuple(lo), tuple(opt), tuple(hi))
        config.add_optimization_profile(profile)

    cache_path = Path(timing_cache) if timing_cache else None
    cache_bytes = cache_path.read_bytes() if cache_path and cache_path.is_file() else b""
    cache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(cache, ignore_mismatch=False)

    log.info("building TensorRT engine %s (this takes minutes)", target.name)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineError(f"TensorRT failed to build an engine from {onnx_path.name} (see the log above)")
    tmp = target.with_suffix(".partial")
    tmp.write_bytes(bytes(serialized))
    tmp.replace(target)
    if cache_path:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        cache_path.write_bytes(bytes(config.get_timing_cache().serialize()))
    return target
