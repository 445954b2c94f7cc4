"""The engines package's public entry points."""

import pytest


def test_engines_load_sam_is_the_package_level_entry_point(tmp_path):
    import engines
    from streamer.errors import EngineError

    with pytest.raises(EngineError):
        engines.load_sam(tmp_path / "missing", backend="onnxruntime")
