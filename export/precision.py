"""FP32 ONNX -> mixed-precision FP16 ONNX, for strongly typed TensorRT builds.

TensorRT 11 removed the weak-typing builder flags (BuilderFlag.FP16, per-layer precision constraints): the
precision of every tensor now comes from the network itself. So `--fp16` converts the exported graph: weights
and activations in FP16, the numerically fragile ops (normalisations, softmax) in FP32 with casts around them,
inputs and outputs kept FP32 so that runtimes feed both builds the same arrays. TensorRT 10 builds the same
converted graph in strongly typed mode, so one path serves both versions.

The conversion is onnxconverter-common's, with two pre-passes for graphs from torch's exporter that it does not
handle: weights shared through Identity nodes (which it leaves FP32 while typing their outputs FP16) and
`Cast(to=FLOAT)` nodes (whose `to` it keeps while typing their outputs FP16); the latter stay FP32 and get a
cast to FP16 after them.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from collections.abc import Sequence

from export.onnx_files import EXTERNAL_DATA_BYTES
from engines.errors import EngineError

log = logging.getLogger(__name__)

# fp16's largest finite value: weights beyond it are clipped rather than becoming infinities.
FP16_MAX = 65504.0


def _import_converter():
    try:
        from onnxconverter_common import float16
    except ImportError:
        raise EngineError("--fp16 needs onnxconverter-common (pip install onnxconverter-common, or the project's "
                          "[sam] extra)") from None
    return float16


def _fold_initializer_identities(graph) -> int:
    """Replace `Identity(initializer)` nodes by a copy of the initializer under the output's name."""
    initializers = {t.name: t for t in graph.initializer}
    kept, folded = [], 0
    for node in graph.node:
        if node.op_type == "Identity" and node.input[0] in initializers:
            copy = type(initializers[node.input[0]])()
            copy.CopyFrom(initializers[node.input[0]])
            copy.name = node.output[0]
            graph.initializer.append(copy)
            folded += 1
        else:
            kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)
    return folded


def _casts_to_float32(graph) -> list[str]:
    import onnx

    names = []
    for node in graph.node:
        if node.op_type == "Cast" and any(a.name == "to" and a.i == onnx.TensorProto.FLOAT for a in node.attribute):
            names.append(node.name)
    return names


def convert_to_fp16(onnx_path: Path | str, out_path: Path | str, keep_fp32_ops: Sequence[str]) -> Path:
    """Write a mixed-precision copy of an FP32 ONNX model.

    Args:
        onnx_path: the FP32 model (external data beside it is read).
        out_path: where the FP16 model goes; its weights go to `<name>.data` beside it when the source had
            external data or they exceed ~1.8 GB.
        keep_fp32_ops: ONNX op types computed in FP32 (inputs cast up, outputs cast down), on top of
            onnxconverter-common's default list (Resize, Range, TopK, ...: ops with FP32-only inputs).

    Returns:
        out_path. Inputs and outputs keep the source's FP32 types.

    Raises:
        EngineError: onnxconverter-common is missing, or the conversion failed (one line).
    """
    import onnx
    from onnx import external_data_helper, shape_inference

    float16 = _import_converter()
    onnx_path, out_path = Path(onnx_path), Path(out_path)
    # Types are inferred before the weights are read: shape inference serialises the model, which fails
    # above protobuf's 2 GB (ViT-H's encoder), and types do not depend on weight values.
    model = onnx.load(str(onnx_path), load_external_data=False)
    external = any(external_data_helper.uses_external_data(t) for t in model.graph.initializer)
    for i, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"{node.op_type}_unnamed_{i}"
    _fold_initializer_identities(model.graph)
    model = shape_inference.infer_shapes(model)
    if external:
        external_data_helper.load_external_data_for_model(model, str(onnx_path.parent))
    # One warning per weight nudged into FP16's range: thousands for ViT-H, and expected.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        try:
            converted = float16.convert_float_to_float16(
                model,
                max_finite_val=FP16_MAX,
                keep_io_types=True,
                disable_shape_infer=True,
                op_block_list=[*float16.DEFAULT_OP_BLOCK_LIST, *keep_fp32_ops],
                node_block_list=_casts_to_float32(model.graph),
            )
        except Exception as exc:  # the converter raises assorted types on graphs it cannot handle
            raise EngineError(f"cannot convert {onnx_path.name} to FP16: {exc}") from None
    weight_bytes = sum(t.ByteSize() for t in converted.graph.initializer)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    data_path = out_path.with_name(out_path.name + ".data")
    data_path.unlink(missing_ok=True)
    if external or weight_bytes > EXTERNAL_DATA_BYTES:
        onnx.save_model(converted, str(out_path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=data_path.name, size_threshold=1024)
    else:
        onnx.save_model(converted, str(out_path))
    log.info("%s: FP16 copy written (%.0f MB of weights; %s kept in FP32)", onnx_path.name, weight_bytes / 1e6,
             ", ".join(keep_fp32_ops) or "nothing")
    return out_path
