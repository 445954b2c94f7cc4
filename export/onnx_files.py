"""Limits of the ONNX file format that every exporter here respects."""

# Above this many bytes of weights an ONNX file cannot hold them (protobuf's 2 GB limit): use external data.
EXTERNAL_DATA_BYTES = 1_800_000_000
