"""`persense export sam|countr|grounding`: write ONNX models (and TensorRT engines) from official checkpoints."""

from __future__ import annotations

import importlib

# Each exporter module has add_arguments(parser) and run(args) -> int.
EXPORTERS = {
    "sam": ("export.sam", "Segment Anything: encoder.onnx + batched decoder.onnx + manifest.json"),
    "countr": ("export.countr", "CounTR density map generator (FSC-147 checkpoint): countr.onnx + manifest.json"),
    "grounding": ("export.grounding", "Grounding DINO with one label's text fixed: grounding.onnx + manifest.json"),
}


def register(subparsers) -> None:
    parser = subparsers.add_parser("export", help="export models to ONNX / TensorRT", description=__doc__)
    kinds = parser.add_subparsers(dest="model", metavar="MODEL", required=True)
    for name, (module_name, help_text) in EXPORTERS.items():
        sub = kinds.add_parser(name, help=help_text, description=help_text)
        module = importlib.import_module(module_name)
        module.add_arguments(sub)
        sub.set_defaults(func=module.run)
