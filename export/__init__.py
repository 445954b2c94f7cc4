"""Model export to ONNX and TensorRT."""
