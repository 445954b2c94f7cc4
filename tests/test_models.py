"""`persense models list|fetch` and `persense setup` against a real HTTP server on 127.0.0.1 serving random-weight
checkpoints of the real architectures (tiny SAM, tiny CounTR), through a catalogue override: no internet."""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from model_server import ModelServer, Served, start
from streamer.cli import main
from streamer.models.catalogue import OFFICIAL


def _saved(state) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def checkpoints() -> dict[str, bytes]:
    """Random weights of the real architectures, serialised as the publishers' checkpoints are."""
    from engines.countr.model import TINY_SPEC, CounTR
    from engines.sam.spec import random_state_dict

    torch.manual_seed(0)
    sam = _saved(random_state_dict("tiny", 3))
    countr = _saved({"model": CounTR(TINY_SPEC).state_dict(), "epoch": 1})
    corrupt = bytearray(sam)
    corrupt[len(corrupt) // 2] ^= 0xFF
    return {"sam.pth": sam, "countr.pth": countr, "corrupt.pth": bytes(corrupt)}


@pytest.fixture
def server(checkpoints):
    state = ModelServer({name: Served(body) for name, body in checkpoints.items()})
    state.files["page.pth"] = Served(b"<html>confirm the download</html>", content_type="text/html")
    http, thread = start(state)
    yield state
    http.shutdown()
    http.server_close()
    thread.join(timeout=10)


def _entry(name, kind, architecture, url, body=None, publish_checksum=True):
    return {
        "name": name, "kind": kind, "architecture": architecture, "filename": f"{name}.pth", "url": url,
        "page": url, "licence": "test-licence", "licence_url": url,
        # Like CounTR's real entry, the second kind has neither size nor checksum: recorded at the first download.
        "size": len(body) if publish_checksum else None,
        "sha256": hashlib.sha256(body).hexdigest() if publish_checksum else None,
    }


@pytest.fixture
def catalogue(tmp_path, server, checkpoints) -> Path:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    dead_port = closed.getsockname()[1]
    closed.close()
    entries = [
        _entry("sam-tiny", "sam", "tiny", server.url("sam.pth"), checkpoints["sam.pth"]),
        _entry("countr-tiny", "countr", "tiny", server.url("countr.pth"), checkpoints["countr.pth"], False),
        # Served corrupt: one byte flipped, same size, so only the checksum can tell.
        _entry("sam-corrupt", "sam", "tiny", server.url("corrupt.pth"), checkpoints["sam.pth"]),
        _entry("sam-offline", "sam", "tiny", f"http://127.0.0.1:{dead_port}/sam.pth", checkpoints["sam.pth"]),
        _entry("sam-page", "sam", "tiny", server.url("page.pth"), checkpoints["sam.pth"], False),
        _entry("sam-proxied", "sam", "tiny", "http://models.invalid/sam.pth", checkpoints["sam.pth"]),
    ]
    path = tmp_path / "catalogue.json"
    path.write_text(json.dumps(entries))
    return path


@pytest.fixture
def cache(tmp_path) -> Path:
    return tmp_path / "cache"


def models(capsys, catalogue, cache, *argv) -> tuple[int, str, str]:
    capsys.readouterr()
    action, *rest = argv
    rc = main(["-q", "models", action, *rest, "--catalogue", str(catalogue), "--cache-dir", str(cache)])
    out, err = capsys.readouterr()
    return rc, out, err


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# -- the official catalogue --------------------------------------------------------------------------------------
def test_list_names_every_official_model_with_its_address_size_and_licence(capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("PERSENSE_CATALOGUE", raising=False)
    assert main(["models", "list", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for entry in OFFICIAL:
        row = next(line for line in out.splitlines() if line.startswith(entry.name + " "))
        assert entry.url in row and entry.licence in row and entry.size_text in row
    assert {e.name for e in OFFICIAL} == {"sam-vit-b", "sam-vit-l", "sam-vit-h", "countr-fsc147"}
    assert all(e.url.startswith("https://dl.fbaipublicfiles.com/segment_anything/sam_vit_")
               for e in OFFICIAL if e.kind == "sam")
    assert "drive.google.com" in out  # CounTR's publisher links a Google Drive file: listed with the --from route
    # --details says where each figure comes from, and what is not published.
    assert main(["models", "list", "--details", "--cache-dir", str(tmp_path)]) == 0
    details = capsys.readouterr().out
    for entry in OFFICIAL:
        assert entry.size_source in details and entry.checksum_source in details and entry.licence_url in details
    assert details.count("sha256:        not published") == len(OFFICIAL)


def test_readme_names_every_official_model_with_its_address():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for entry in OFFICIAL:
        assert entry.name in readme and entry.page.split("?")[0] in readme
        if entry.kind == "sam":
            assert entry.url in readme


# -- fetch -------------------------------------------------------------------------------------------------------
def test_full_fetch_verifies_installs_and_lists_it(capsys, catalogue, cache, server, checkpoints):
    rc, out, err = models(capsys, catalogue, cache, "fetch", "sam-tiny")
    assert rc == 0, err
    final = cache / "sam-tiny" / "sam-tiny.pth"
    assert final.read_bytes() == checkpoints["sam.pth"]
    assert not list((cache / "sam-tiny").glob("*.partial"))
    meta = json.loads((cache / "sam-tiny" / "download.json").read_text())
    assert meta["sha256"] == hashlib.sha256(checkpoints["sam.pth"]).hexdigest()
    assert meta["sha256_origin"] == "publisher"
    rc, out, _ = models(capsys, catalogue, cache, "list")
    assert "installed" in next(line for line in out.splitlines() if line.startswith("sam-tiny "))
    assert "installed" not in next(line for line in out.splitlines() if line.startswith("countr-tiny "))
    # Already there: nothing is downloaded again.
    before = len(server.requests)
    assert models(capsys, catalogue, cache, "fetch", "sam-tiny")[0] == 0
    assert len(server.requests) == before


def test_transfer_cut_half_way_resumes_with_a_range_request(capsys, catalogue, cache, server, checkpoints):
    server.files["sam.pth"].cut_next = True
    rc, _, err = models(capsys, catalogue, cache, "fetch", "sam-tiny")
    assert rc == 2
    line = one_line(err)
    assert "run the command again to resume" in line and "--from FILE" in line
    final, partial = cache / "sam-tiny" / "sam-tiny.pth", cache / "sam-tiny" / "sam-tiny.pth.partial"
    assert not final.exists()
    half = len(checkpoints["sam.pth"]) // 2
    assert partial.stat().st_size == half

    rc, _, err = models(capsys, catalogue, cache, "fetch", "sam-tiny")
    assert rc == 0, err
    assert server.requests[-1][1] == f"bytes={half}-"
    assert final.read_bytes() == checkpoints["sam.pth"] and not partial.exists()


def test_corrupted_download_is_refused_and_deleted(capsys, catalogue, cache):
    rc, _, err = models(capsys, catalogue, cache, "fetch", "sam-corrupt")
    assert rc == 2
    assert "fails its checksum" in one_line(err)
    assert not any((cache / "sam-corrupt").iterdir())  # neither a final nor a partial file


def test_first_download_records_the_checksum_where_none_is_published(capsys, catalogue, cache, checkpoints,
                                                                     tmp_path):
    assert models(capsys, catalogue, cache, "fetch", "countr-tiny")[0] == 0
    meta = json.loads((cache / "countr-tiny" / "download.json").read_text())
    assert meta["sha256"] == hashlib.sha256(checkpoints["countr.pth"]).hexdigest()
    assert meta["sha256_origin"] == "first download" and meta["size"] == len(checkpoints["countr.pth"])
    # A later copy must match what the first download recorded.
    other = tmp_path / "other.pth"
    other.write_bytes(checkpoints["sam.pth"])
    rc, _, err = models(capsys, catalogue, cache, "fetch", "countr-tiny", "--from", str(other))
    assert rc == 2 and "is " in one_line(err) and "bytes" in err
    assert (cache / "countr-tiny" / "countr-tiny.pth").read_bytes() == checkpoints["countr.pth"]


def test_from_file_is_verified_like_a_download(capsys, catalogue, cache, checkpoints, tmp_path):
    good, wrong, same_size, text = (tmp_path / n for n in ("good.pth", "wrong.pth", "same.pth", "text.pth"))
    good.write_bytes(checkpoints["sam.pth"])
    wrong.write_bytes(checkpoints["countr.pth"])
    same_size.write_bytes(checkpoints["corrupt.pth"])
    text.write_text("not a checkpoint")
    rc, _, err = models(capsys, catalogue, cache, "fetch", "sam-tiny", "--from", str(wrong))
    assert rc == 2 and "truncated or another file" in one_line(err)
    rc, _, err = models(capsys, catalogue, cache, "fetch", "sam-tiny", "--from", str(same_size))
    assert rc == 2 and "fails its checksum" in one_line(err)
    rc, _, err = models(capsys, catalogue, cache, "fetch", "sam-tiny", "--from", str(tmp_path / "missing.pth"))
    assert rc == 2 and "no such file" in one_line(err)
    assert not (cache / "sam-tiny" / "sam-tiny.pth").exists()
    fifo = tmp_path / "fifo.pth"
    os.mkfifo(fifo)  # no writer: reading it would block for ever
    rc, _, err = models(capsys, catalogue, cache, "fetch", "sam-tiny", "--from", str(fifo))
    assert rc == 2 and "not a regular file" in one_line(err)
    # With nothing published or recorded yet, at least the format is checked.
    rc, _, err = models(capsys, catalogue, cache, "fetch", "countr-tiny", "--from", str(text))
    assert rc == 2 and "not a PyTorch checkpoint" in one_line(err)
    rc, _, err = models(capsys, catalogue, cache, "fetch", "sam-tiny", "--from", str(good))
    assert rc == 0, err
    assert (cache / "sam-tiny" / "sam-tiny.pth").read_bytes() == checkpoints["sam.pth"]
    assert json.loads((cache / "sam-tiny" / "download.json").read_text())["source"].startswith("file ")


def test_unknown_name_lists_the_known_ones_before_any_download(capsys, catalogue, cache, server):
    rc, _, err = models(capsys, catalogue, cache, "fetch", "sam-tiny", "sam-vit-x")
    assert rc == 2
    assert "unknown model 'sam-vit-x'" in one_line(err) and "sam-tiny, countr-tiny" in err
    assert server.requests == []


def test_no_network_names_the_from_alternative(capsys, catalogue, cache):
    rc, _, err = models(capsys, catalogue, cache, "fetch", "sam-offline")
    assert rc == 2
    line = one_line(err)
    assert "cannot download sam-offline" in line and "persense models fetch sam-offline --from FILE" in line
    assert not (cache / "sam-offline" / "sam-offline.pth").exists()


def test_a_web_page_instead_of_the_file_is_refused(capsys, catalogue, cache):
    rc, _, err = models(capsys, catalogue, cache, "fetch", "sam-page")
    assert rc == 2 and "answered with a web page" in one_line(err) and "--from FILE" in err
    assert not (cache / "sam-page" / "sam-page.pth").exists()


def test_proxy_environment_variables_are_honoured(capsys, catalogue, cache, server, monkeypatch, checkpoints):
    # models.invalid does not resolve: the file can only arrive through the proxy (our server).
    for name in ("no_proxy", "NO_PROXY", "HTTP_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{server.port}")
    rc, _, err = models(capsys, catalogue, cache, "fetch", "sam-proxied")
    assert rc == 0, err
    assert server.requests[-1][0] == "http://models.invalid/sam.pth"
    assert (cache / "sam-proxied" / "sam-proxied.pth").read_bytes() == checkpoints["sam.pth"]


def test_unwritable_cache_is_one_line(capsys, catalogue, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    rc, _, err = models(capsys, catalogue, blocker / "cache", "fetch", "sam-tiny")
    assert rc == 2 and "is not writable" in one_line(err) and "--cache-dir" in err


def test_full_disk_is_one_line_and_leaves_no_complete_file(capsys, catalogue, cache):
    # The partial file is /dev/full: every write fails with ENOSPC, as on a full disk.
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full")
    folder = cache / "sam-tiny"
    folder.mkdir(parents=True)
    (folder / "sam-tiny.pth.partial").symlink_to("/dev/full")
    rc, _, err = models(capsys, catalogue, cache, "fetch", "sam-tiny")
    assert rc == 2 and "disk full" in one_line(err)
    assert not (folder / "sam-tiny.pth").exists()


def test_too_little_free_space_is_refused_before_downloading(capsys, catalogue, cache, server, monkeypatch):
    import shutil as real_shutil

    from streamer.models import download

    usage = real_shutil.disk_usage("/")
    monkeypatch.setattr(download.shutil, "disk_usage", lambda path: usage._replace(free=10))
    rc, _, err = models(capsys, catalogue, cache, "fetch", "sam-tiny")
    assert rc == 2 and "not enough disk space" in one_line(err)
    assert server.requests == []


# -- setup -------------------------------------------------------------------------------------------------------
def test_setup_writes_a_configuration_that_segment_runs(capsys, catalogue, cache, tmp_path, server):
    from sam_testing import textured_image

    out = tmp_path / "line"
    capsys.readouterr()
    rc = main(["-q", "setup", "sam-tiny", "--dmg", "countr", "--out", str(out), "--catalogue", str(catalogue),
               "--cache-dir", str(cache)])
    stdout, err = capsys.readouterr()
    assert rc == 0, err
    config = out / "config.yaml"
    assert f"persense run --config {config}" in stdout
    assert (out / "sam-tiny" / "manifest.json").is_file() and (out / "countr" / "manifest.json").is_file()
    fetched = {path for path, _ in server.requests}
    assert fetched == {"/sam.pth", "/countr.pth"}

    image = textured_image(96, 128, seed=1)
    mask = np.zeros(image.shape[:2], np.uint8)
    mask[30:60, 40:80] = 255
    cv2.imwrite(str(tmp_path / "support.png"), image[..., ::-1])
    cv2.imwrite(str(tmp_path / "mask.png"), mask)
    cv2.imwrite(str(tmp_path / "query.png"), textured_image(96, 128, seed=2)[..., ::-1])
    rc = main(["-q", "segment", "--config", str(config), "--support", str(tmp_path / "support.png"),
               "--support-mask", str(tmp_path / "mask.png"), "--out", str(tmp_path / "seg"),
               str(tmp_path / "query.png")])
    assert rc == 0, capsys.readouterr().err
    result = json.loads((tmp_path / "seg" / "query.json").read_text())
    assert (result["width"], result["height"]) == (128, 96) and result["count"] == len(result["instances"])
    assert (tmp_path / "seg" / "query_mask.png").is_file()
    # The configuration runs exactly what setup exported: SAM with CounTR as the density map generator.
    from streamer.config import load_config
    from streamer.engine_factory import build_engines

    loaded = load_config(config)
    assert loaded.engines.sam.model_dir == out / "sam-tiny" and loaded.engines.countr.model_dir == out / "countr"
    assert build_engines(loaded.engines).name.endswith("+countr")

    # Run again: nothing to fetch, nothing to export (the exports are recorded), the same configuration.
    onnx = out / "countr" / "countr.onnx"
    stamp = onnx.stat().st_mtime_ns
    requests = len(server.requests)
    rc = main(["-q", "setup", "sam-tiny", "--dmg", "countr", "--out", str(out), "--catalogue", str(catalogue),
               "--cache-dir", str(cache)])
    assert rc == 0 and len(server.requests) == requests and onnx.stat().st_mtime_ns == stamp


def test_setup_refuses_bad_requests_in_one_line(capsys, catalogue, cache, tmp_path, server):
    for argv, expected in (
        (["setup", "countr-tiny"], "setup takes a segmenter"),
        (["setup", "sam-nope"], "unknown model 'sam-nope'"),
        (["setup", "sam-tiny", "--fp16"], "add --tensorrt"),
    ):
        capsys.readouterr()
        rc = main(["-q", *argv, "--out", str(tmp_path / "o"), "--catalogue", str(catalogue), "--cache-dir",
                   str(cache)])
        assert rc == 2 and expected in one_line(capsys.readouterr().err)
    assert server.requests == [] and not (tmp_path / "o").exists()


def test_a_partial_file_the_server_cannot_continue_starts_again(capsys, catalogue, cache, server, checkpoints):
    folder = cache / "sam-tiny"
    folder.mkdir(parents=True)
    partial = folder / "sam-tiny.pth.partial"
    partial.write_bytes(b"x" * (len(checkpoints["sam.pth"]) + 5))  # longer than the file: the server answers 416
    rc, _, err = models(capsys, catalogue, cache, "fetch", "sam-tiny")
    assert rc == 0, err
    assert [r for _, r in server.requests] == [f"bytes={len(checkpoints['sam.pth']) + 5}-", None]
    assert (folder / "sam-tiny.pth").read_bytes() == checkpoints["sam.pth"]


def test_a_damaged_partial_file_is_refused_then_deleted(capsys, catalogue, cache, checkpoints):
    folder = cache / "sam-tiny"
    folder.mkdir(parents=True)
    (folder / "sam-tiny.pth.partial").write_bytes(b"junk")  # resumed after these 4 bytes: the whole fails its check
    rc, _, err = models(capsys, catalogue, cache, "fetch", "sam-tiny")
    assert rc == 2 and "fails its checksum" in one_line(err)
    assert not any(folder.glob("sam-tiny.pth*"))
    assert models(capsys, catalogue, cache, "fetch", "sam-tiny")[0] == 0
    assert (folder / "sam-tiny.pth").read_bytes() == checkpoints["sam.pth"]


def test_setup_with_tensorrt_where_it_cannot_be_built_fails_before_downloading(capsys, catalogue, cache, tmp_path,
                                                                              server):
    from engines.errors import EngineError
    from engines.trt import import_tensorrt, require_cuda

    try:
        import_tensorrt()
        require_cuda()
        pytest.skip("TensorRT and a GPU are present: engines can be built here")
    except EngineError:
        pass
    rc = main(["-q", "setup", "sam-tiny", "--tensorrt", "--out", str(tmp_path / "o"), "--catalogue",
               str(catalogue), "--cache-dir", str(cache)])
    line = one_line(capsys.readouterr().err)
    assert rc == 2 and ("TensorRT" in line or "CUDA" in line)
    assert server.requests == []


def test_progress_bar_reports_the_transfer(capsys, catalogue, cache, checkpoints):
    from streamer.models.cache import CachedModel
    from streamer.models.catalogue import load_catalogue
    from streamer.models.download import fetch

    entry = load_catalogue(catalogue).get("sam-tiny")
    path = fetch(CachedModel(entry, cache), progress=True)
    err = capsys.readouterr().err
    assert path.read_bytes() == checkpoints["sam.pth"]
    assert "sam-tiny" in err and "100%" in err
