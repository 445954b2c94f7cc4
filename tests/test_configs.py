"""Every shipped configuration validates, and config errors are one clear line."""

from pathlib import Path

import pytest

from streamer.config import Config, load_config
from streamer.errors import UserError

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_configs_validate(path):
    assert isinstance(load_config(path), Config)


def test_default_yaml_equals_the_built_in_defaults():
    loaded = load_config(Path(__file__).resolve().parents[1] / "configs" / "default.yaml")
    assert loaded.pipeline == Config().pipeline and loaded.engines == Config().engines
    assert loaded.stream.publish == Config().stream.publish


@pytest.mark.parametrize(
    "text,needle",
    [
        ("pipeline:\n  idm_treshold: 30\n", "idm_treshold"),
        ("pipeline:\n  ppsm_k: -1\n", "ppsm_k"),
        ("gate:\n  kind: roi\n  roi: [10, 10, 5, 50]\n", "roi"),
        ("- just\n- a list\n", "mapping"),
        ("engines: [unclosed\n", "cannot read"),
    ],
)
def test_bad_config_is_one_line_naming_the_problem(tmp_path, text, needle):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(UserError) as err:
        load_config(path)
    message = str(err.value)
    assert needle in message and "\n" not in message


def test_missing_config_file():
    with pytest.raises(UserError, match="not found"):
        load_config("/nonexistent/persense.yaml")


def test_model_dirs_beside_the_config_win_over_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "plant" / "models" / "sam").mkdir(parents=True)
    (tmp_path / "models" / "sam").mkdir(parents=True)
    config_path = tmp_path / "plant" / "c.yaml"
    config_path.write_text("engines:\n  segmenter: sam\n  sam:\n    model_dir: models/sam\n")
    monkeypatch.chdir(tmp_path)
    assert load_config(config_path).engines.sam.model_dir == tmp_path / "plant" / "models" / "sam"
    (tmp_path / "plant" / "models" / "sam").rmdir()
    assert load_config(config_path).engines.sam.model_dir == Path("models/sam")


def test_yaml_syntax_errors_name_the_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("pipeline:\n  idm_threshold: 30\nengines: [unclosed\n")
    with pytest.raises(UserError, match="line 4"):
        load_config(path)
