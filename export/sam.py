"""`persense export sam`: Segment Anything checkpoint -> encoder.onnx + batched decoder.onnx + manifest.json
(+ TensorRT engines with --tensorrt).

Testing aids: `--random-weights SEED` exports the real architecture with random weights instead of a checkpoint
(speed does not depend on the values, so benchmarks use it), and the hidden `--model-type tiny` is a small
configuration of the same architecture for unit tests (see engines.sam.spec).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from engines.sam.manifest import read_manifest
from engines.sam.spec import IMAGE_SIZE, LOW_RES, OFFICIAL_TYPES, SPECS
from engines.outputs import check_output_dir
from engines.errors import UserError

log = logging.getLogger(__name__)

DEFAULT_MAX_PROMPTS = 512
DEFAULT_OPT_PROMPTS = 64


def _model_type(value: str) -> str:
    if value not in SPECS:
        raise argparse.ArgumentTypeError(f"invalid choice {value!r} (choose from {', '.join(OFFICIAL_TYPES)})")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, help="official segment-anything checkpoint (.pth)")
    parser.add_argument("--model-type", type=_model_type, required=True, metavar="|".join(OFFICIAL_TYPES),
                        help="the checkpoint's model type (checked against the checkpoint)")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--tensorrt", action="store_true", help="also build TensorRT engines (needs a GPU)")
    parser.add_argument("--fp16", action="store_true",
                        help="TensorRT FP16 kernels (LayerNorm and softmax stay in FP32)")
    parser.add_argument("--max-prompts", type=int, default=DEFAULT_MAX_PROMPTS,
                        help=f"TensorRT profile: most prompts per decoder call (default {DEFAULT_MAX_PROMPTS})")
    parser.add_argument("--opt-prompts", type=int, default=DEFAULT_OPT_PROMPTS,
                        help=f"TensorRT profile: prompt count to tune for (default {DEFAULT_OPT_PROMPTS})")
    parser.add_argument("--timing-cache", type=Path, default=None,
                        help="TensorRT timing cache file (default: OUT/trt-timing.cache)")
    parser.add_argument("--copy-checkpoint", action="store_true",
                        help="copy the checkpoint into OUT (the torch backend loads it from there)")
    parser.add_argument("--encoder-batch", type=int, default=1, metavar="N",
                        help="frames per encoder call: above 1, the encoder gets a dynamic batch dimension (the "
                        "TensorRT engine's profile: 1 to N) and frames of several cameras can be encoded together")
    parser.add_argument("--random-weights", type=int, default=None, metavar="SEED",
                        help="testing/benchmarks: random weights of the real architecture instead of a checkpoint")


def run(args) -> int:
    from export.sam_onnx import copy_checkpoint, export_onnx

    if (args.checkpoint is None) == (args.random_weights is None):
        raise UserError("give either --checkpoint PTH or --random-weights SEED")
    check_output_dir(args.out)
    if args.fp16 and not args.tensorrt:
        raise UserError("--fp16 applies to TensorRT engines: add --tensorrt")
    if not 1 <= args.encoder_batch <= 64:
        raise UserError("--encoder-batch must be from 1 to 64")
    if not 1 <= args.opt_prompts <= args.max_prompts:
        raise UserError("need 1 <= --opt-prompts <= --max-prompts")
    if args.tensorrt:
        # Fail before the minutes-long ONNX export when the engines cannot be built here.
        from engines.trt import import_tensorrt, require_cuda

        import_tensorrt()
        require_cuda()
    sam, info = load_model(args.model_type, args.checkpoint, args.random_weights, args.out)
    if args.checkpoint is not None and args.copy_checkpoint:
        info["path"] = str(copy_checkpoint(args.checkpoint, args.out).resolve())
    manifest = export_onnx(sam, args.model_type, args.out, checkpoint_info=info, encoder_batch=args.encoder_batch > 1)
    del sam
    log.info("wrote %s", ", ".join(sorted(manifest.files)))
    if args.tensorrt:
        build_tensorrt(args.out, args.fp16, args.opt_prompts, args.max_prompts, args.timing_cache,
                       encoder_batch=args.encoder_batch)
    print(f"exported SAM {args.model_type} to {args.out}")
    return 0


def load_model(model_type: str, checkpoint: Path | None, seed: int | None, out_dir: Path):
    """-> (torch Sam, checkpoint info for the manifest). Random weights are saved into out_dir so that the torch
    backend reproduces them."""
    import torch

    from engines.sam.manifest import sha256_file
    from engines.sam.spec import build_torch_sam, load_checkpoint, random_state_dict

    if checkpoint is not None:
        sam = load_checkpoint(checkpoint, model_type)
        return sam, {"path": str(Path(checkpoint).resolve()), "sha256": sha256_file(Path(checkpoint))}
    state = random_state_dict(model_type, seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "checkpoint.pth"
    torch.save(state, path)
    sam = build_torch_sam(model_type)
    sam.load_state_dict(state)
    return sam.eval(), {"path": str(path.resolve()), "random_seed": seed, "sha256": sha256_file(path)}


def decoder_profiles(opt: int, max_prompts: int) -> dict:
    """TensorRT optimisation profile of the decoder: a batch of 1..max single-point prompts (+ padding point)."""
    return {
        "point_coords": ((1, 2, 2), (opt, 2, 2), (max_prompts, 2, 2)),
        "point_labels": ((1, 2), (opt, 2), (max_prompts, 2)),
        "mask_input": ((1, 1, LOW_RES, LOW_RES),) * 3,
    }


def build_tensorrt(model_dir: Path, fp16: bool, opt: int, max_prompts: int, timing_cache: Path | None,
                   encoder_batch: int = 1) -> dict:
    """Build encoder and decoder engines for this GPU into model_dir and record them in the manifest (the runtime
    loads exactly the engines recorded there). Engines of the same export with another profile or precision stay
    on disk but are no longer used."""
    from export.tensorrt import build_engine

    # Checked against the files: the engines are named by these checksums.
    manifest = read_manifest(model_dir, verify=True)
    cache = timing_cache or (model_dir / "trt-timing.cache")
    encoder = build_engine(model_dir / "encoder.onnx", model_dir, "encoder",
                           {"image": tuple((n, 3, IMAGE_SIZE, IMAGE_SIZE) for n in (1, encoder_batch, encoder_batch))},
                           fp16=fp16, timing_cache=cache,
                           onnx_sha256=manifest.onnx_sha256("encoder.onnx"))
    decoder = build_engine(model_dir / "decoder.onnx", model_dir, "decoder", decoder_profiles(opt, max_prompts),
                           fp16=fp16, timing_cache=cache, onnx_sha256=manifest.onnx_sha256("decoder.onnx"))
    manifest.engines = {"encoder": encoder.name, "decoder": decoder.name}
    manifest.write(model_dir)
    log.info("TensorRT engines: %s, %s", encoder.name, decoder.name)
    return manifest.engines
