"""Model runtimes behind small interfaces (see engines.interfaces)."""


def load_sam(model_dir, backend: str = "onnxruntime"):
    """An exported SAM model: encode(image) / decode(embedding, points) / predict(image, points).

    See engines.sam.load_sam; imported here on first use so that `import engines` loads no runtime.
    """
    from engines.sam import load_sam as _load_sam

    return _load_sam(model_dir, backend)


__all__ = ["load_sam"]
