"""Write a SAM model's encoder.onnx, decoder.onnx and manifest.json (Python API behind `persense export sam`)."""

from __future__ import annotations

import logging
import shutil
import tempfile
import warnings
from importlib import metadata
from pathlib import Path

from engines.sam.manifest import SamManifest, file_entry
from engines.sam.spec import GRID, IMAGE_SIZE, LOW_RES, PIXEL_MEAN, PIXEL_STD, spec_for
from engines.errors import UserError
from export.onnx_files import EXTERNAL_DATA_BYTES

log = logging.getLogger(__name__)

OPSET = 17


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


def _export(module, args: tuple, path: Path, input_names, output_names, dynamic_axes, external: bool) -> None:
    """torch -> ONNX with the TorchScript exporter (stable for SAM's graph); weights go to `<name>.data` when
    `external`, since ViT-H's encoder (2.5 GB) exceeds protobuf's limit."""
    import onnx
    import torch

    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        tmp_path = Path(tmp) / path.name
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                args,
                str(tmp_path),
                input_names=list(input_names),
                output_names=list(output_names),
                dynamic_axes=dynamic_axes,
                opset_version=OPSET,
                do_constant_folding=True,
                dynamo=False,
            )
        for stale in (path, path.with_name(path.name + ".data")):
            stale.unlink(missing_ok=True)
        if not external and len(list(Path(tmp).iterdir())) == 1:
            tmp_path.replace(path)  # one self-contained file: no need to hold a second copy in memory
            return
        model = onnx.load(str(tmp_path))  # pulls in any external data the exporter wrote
        if external:
            onnx.save_model(
                model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                location=path.name + ".data", size_threshold=1024,
            )
        else:
            onnx.save_model(model, str(path))


def export_onnx(
    sam,
    model_type: str,
    out_dir: Path | str,
    checkpoint_info: dict | None = None,
    external_data: bool | None = None,
    encoder_batch: bool = False,
) -> SamManifest:
    """Export a torch Sam to `out_dir`: encoder.onnx, decoder.onnx, manifest.json; TensorRT engines of an earlier
    export there are deleted.

    Args:
        sam: segment_anything.modeling.Sam (eval mode, CPU).
        model_type: vit_b | vit_l | vit_h | tiny (recorded in the manifest; selects the expected shapes).
        checkpoint_info: recorded in the manifest (path, sha256) so the torch backend can find the weights.
        external_data: store the encoder's weights in encoder.onnx.data; default: when they exceed ~1.8 GB.
        encoder_batch: give the encoder a dynamic batch dimension (frames of several cameras in one call,
            engines.sam.model.SamModel.encode_batch); else its batch is 1.

    Returns:
        The manifest written.
    """
    import torch

    from engines.sam.modules import DECODER_INPUTS, DECODER_OUTPUTS, SamDecoderModule, SamEncoderModule

    from export.tensorrt import remove_stale_engines

    spec = spec_for(model_type)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Engines built from an earlier export hold its weights; the new manifest names none until --tensorrt.
    remove_stale_engines(out_dir)
    sam = sam.eval().cpu()
    encoder_bytes = sum(p.numel() * p.element_size() for p in sam.image_encoder.parameters())
    if external_data is None:
        external_data = encoder_bytes > EXTERNAL_DATA_BYTES

    log.info("exporting the %s image encoder (%.0f MB of weights)", model_type, encoder_bytes / 1e6)
    # A batched export traces two images, so that no dimension is specialised to 1.
    image = torch.zeros(2 if encoder_batch else 1, 3, IMAGE_SIZE, IMAGE_SIZE)
    batch_axes = {"image": {0: "batch"}, "image_embeddings": {0: "batch"}} if encoder_batch else None
    _export(SamEncoderModule(sam), (image,), out_dir / "encoder.onnx", ["image"], ["image_embeddings"], batch_axes,
            external_data)

    log.info("exporting the batched mask decoder")
    c = spec.prompt_dim
    example = (
        torch.randn(1, c, GRID, GRID),
        torch.randint(0, IMAGE_SIZE, (3, 2, 2)).float(),
        torch.tensor([[1.0, -1.0]] * 3),
        torch.zeros(1, 1, LOW_RES, LOW_RES),
        torch.zeros(1),
        torch.zeros(1, GRID, GRID),
        torch.zeros(1, c),
    )
    dynamic = {
        "point_coords": {0: "num_prompts", 1: "num_points"},
        "point_labels": {0: "num_prompts", 1: "num_points"},
        "mask_input": {0: "num_masks"},
        **{name: {0: "num_prompts"} for name in DECODER_OUTPUTS},
    }
    _export(SamDecoderModule(sam), example, out_dir / "decoder.onnx", DECODER_INPUTS, DECODER_OUTPUTS, dynamic,
            False)

    files = {}
    for name in ("encoder.onnx", "encoder.onnx.data", "decoder.onnx"):
        if (out_dir / name).is_file():
            files[name] = file_entry(out_dir / name)
    manifest = SamManifest(
        model_type=model_type,
        input_size=IMAGE_SIZE,
        pixel_mean=list(PIXEL_MEAN),
        pixel_std=list(PIXEL_STD),
        embed_dim=c,
        opset=OPSET,
        files=files,
        versions={
            "torch": torch.__version__,
            "onnx": _version("onnx"),
            "segment-anything": _version("segment-anything"),
            "persense-stream": _version("persense-stream"),
        },
        checkpoint=dict(checkpoint_info or {}),
    )
    manifest.write(out_dir)
    return manifest


def copy_checkpoint(checkpoint: Path, out_dir: Path) -> Path:
    """Place the checkpoint beside the ONNX files (for the torch backend); refuses to overwrite with another."""
    target = Path(out_dir) / "checkpoint.pth"
    if Path(checkpoint).resolve() == target.resolve():
        return target
    if not Path(checkpoint).is_file():
        raise UserError(f"checkpoint not found: {checkpoint}")
    shutil.copyfile(checkpoint, target)
    return target
