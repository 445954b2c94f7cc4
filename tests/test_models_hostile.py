"""The model cache and download (streamer.models.cache, download) against hostile servers and tampered files.

Checkpoints here are small zip archives (what torch.save writes; the cache checks that format where no checksum
is known), fetched by calling streamer.models.download.fetch directly: no torch, no CLI, milliseconds a test.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from model_server import ModelServer, Served, start
from streamer.errors import UserError
from streamer.models import download
from streamer.models.cache import METADATA_NAME, CachedModel, default_cache_dir, write_atomic
from streamer.models.catalogue import ModelEntry, human_size


def checkpoint(seed: int, size: int = 4000) -> bytes:
    """A zip archive of `size` random bytes stored uncompressed: equal seeds give equal files, equal sizes give
    files of equal length."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", hashlib.shake_256(str(seed).encode()).digest(size))
    return buffer.getvalue()


GOOD, TAMPERED = checkpoint(1), checkpoint(2)  # same size, other content


@pytest.fixture
def server():
    state = ModelServer({"good.pth": Served(GOOD), "tampered.pth": Served(TAMPERED)})
    http, thread = start(state)
    yield state
    http.shutdown()
    http.server_close()
    thread.join(timeout=10)


def cached(tmp_path: Path, server: ModelServer, file="good.pth", published=True, name="m") -> CachedModel:
    entry = ModelEntry(name=name, kind="sam", architecture="tiny", filename=f"{name}.pth", url=server.url(file),
                       page="https://example.invalid/page", licence="test", licence_url="https://example.invalid/l",
                       size=len(GOOD) if published else None,
                       sha256=hashlib.sha256(GOOD).hexdigest() if published else None)
    return CachedModel(entry, tmp_path / "cache")


def fetch(model: CachedModel, source: Path | None = None) -> Path:
    return download.fetch(model, source=source, progress=False)


def refused(model: CachedModel, source: Path | None = None) -> str:
    with pytest.raises(UserError) as caught:
        fetch(model, source)
    message = str(caught.value)
    assert "\n" not in message
    return message


# -- the checksum recorded at the first download -----------------------------------------------------------------
def test_a_same_size_file_of_other_content_fails_the_recorded_checksum(tmp_path, server):
    model = cached(tmp_path, server, published=False)
    assert fetch(model).read_bytes() == GOOD
    meta = json.loads(model.metadata_path.read_text())
    assert meta["sha256"] == hashlib.sha256(GOOD).hexdigest() and meta["sha256_origin"] == "first download"
    assert meta["size"] == len(GOOD) and model.expected_size() == len(GOOD)
    # A file brought in by hand: the size matches, the content does not.
    tampered = tmp_path / "tampered.pth"
    tampered.write_bytes(TAMPERED)
    message = refused(model, tampered)
    assert "fails its checksum" in message and "recorded at the first download" in message
    assert hashlib.sha256(GOOD).hexdigest()[:12] in message and hashlib.sha256(TAMPERED).hexdigest()[:12] in message
    assert model.path.read_bytes() == GOOD and not model.partial.exists()
    # The same from the network: the server now hands out other bytes of the same size under the same address.
    model.path.unlink()
    server.files["good.pth"] = Served(TAMPERED)
    assert "fails its checksum" in refused(model)
    assert not model.path.exists() and not model.partial.exists()
    # The recorded checksum survives the refusals, and the right file is still accepted.
    assert json.loads(model.metadata_path.read_text())["sha256"] == hashlib.sha256(GOOD).hexdigest()
    good = tmp_path / "good.pth"
    good.write_bytes(GOOD)
    assert fetch(model, good).read_bytes() == GOOD
    assert json.loads(model.metadata_path.read_text())["sha256_origin"] == "first download"


def test_a_published_checksum_wins_over_a_recorded_one_and_names_its_origin(tmp_path, server):
    model = cached(tmp_path, server)
    model.folder.mkdir(parents=True)
    # A metadata file claiming the tampered file's checksum (and size) does not make the tampered file acceptable.
    write_atomic(model.metadata_path, json.dumps({"sha256": hashlib.sha256(TAMPERED).hexdigest(),
                                                  "size": len(TAMPERED)}).encode())
    assert model.expected_sha256() == hashlib.sha256(GOOD).hexdigest()
    tampered = tmp_path / "tampered.pth"
    tampered.write_bytes(TAMPERED)
    message = refused(model, tampered)
    assert "fails its checksum" in message and "published" in message and "first download" not in message
    assert fetch(model).read_bytes() == GOOD
    assert json.loads(model.metadata_path.read_text())["sha256_origin"] == "publisher"


def test_unreadable_or_odd_metadata_trusts_nothing_from_it(tmp_path, server):
    model = cached(tmp_path, server, published=False)
    model.folder.mkdir(parents=True)
    for text in ("not json", "[1, 2]", json.dumps({"sha256": 5, "size": "4000"})):
        model.metadata_path.write_text(text)
        assert model.expected_sha256() is None and model.expected_size() is None
    model.metadata_path.write_bytes(b'{"sha256": "' + b"a" * 70000 + b'"}')  # beyond the read limit: not parsed
    assert model.metadata() == {}


def test_installed_means_the_final_name_with_the_expected_size(tmp_path, server):
    model = cached(tmp_path, server)
    assert not model.installed()
    model.folder.mkdir(parents=True)
    model.path.write_bytes(GOOD[:-1])
    assert not model.installed()
    model.path.write_bytes(GOOD)
    assert model.installed()
    unknown = cached(tmp_path, server, published=False, name="n")
    unknown.folder.mkdir(parents=True)
    unknown.path.mkdir()  # a folder under the file's name is not a checkpoint
    assert not unknown.installed()


def test_the_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PERSENSE_MODELS", str(tmp_path / "a"))
    assert default_cache_dir() == tmp_path / "a"
    monkeypatch.setenv("PERSENSE_MODELS", "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "x" / "persense" / "models"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "h"))
    assert default_cache_dir() == tmp_path / "h" / ".cache" / "persense" / "models"


# -- servers that ignore ranges or lie about them ----------------------------------------------------------------
def _half_partial(model: CachedModel, junk: bool = False) -> int:
    model.folder.mkdir(parents=True, exist_ok=True)
    half = len(GOOD) // 2
    model.partial.write_bytes(b"J" * half if junk else GOOD[:half])
    return half


@pytest.mark.parametrize("published", [True, False])
def test_a_server_that_ignores_range_restarts_the_file_from_zero(tmp_path, server, published):
    server.files["good.pth"].ignore_range = True
    model = cached(tmp_path, server, published=published)
    half = _half_partial(model, junk=True)  # were the whole file appended to it, this would stay in front
    assert fetch(model).read_bytes() == GOOD
    assert server.requests == [("/good.pth", f"bytes={half}-")]
    assert not model.partial.exists()


def test_a_resumed_transfer_appends_exactly_the_missing_part(tmp_path, server):
    model = cached(tmp_path, server)
    half = _half_partial(model)
    assert fetch(model).read_bytes() == GOOD
    assert server.requests == [("/good.pth", f"bytes={half}-")]


@pytest.mark.parametrize("claimed", [0, 1, "half+1"])
def test_a_206_that_resumes_elsewhere_than_asked_is_refused(tmp_path, server, claimed):
    model = cached(tmp_path, server)
    half = _half_partial(model)
    server.files["good.pth"].resume_at = half + 1 if claimed == "half+1" else claimed
    message = refused(model)
    assert "the server resumed at" in message and f"not at byte {half}" in message
    assert model.partial.read_bytes() == GOOD[:half] and not model.path.exists()


def test_a_206_without_a_content_range_is_refused():
    with pytest.raises(UserError, match="resumed at ''"):
        download._resume_point(SimpleNamespace(status=206, headers={}), 2000)
    assert download._resume_point(SimpleNamespace(status=200, headers={}), 7) == 0


def test_a_server_offering_another_size_than_published_is_refused_before_writing(tmp_path, server):
    server.files["good.pth"].length_extra = 10
    model = cached(tmp_path, server)
    message = refused(model)
    assert f"offers {len(GOOD) + 10} bytes" in message and f"is {len(GOOD)} bytes" in message
    assert not model.partial.exists() and not model.path.exists()


def test_a_server_that_promises_more_than_it_sends_keeps_the_partial_for_a_resume(tmp_path, server):
    server.files["good.pth"].length_extra = 10
    model = cached(tmp_path, server, published=False)
    message = refused(model)
    assert f"connection closed after {len(GOOD)} of {len(GOOD) + 10} bytes" in message
    assert "kept, run the command again to resume" in message and "--from FILE" in message
    assert model.partial.read_bytes() == GOOD and not model.path.exists()


def test_a_server_that_sends_less_than_the_file_fails_verification_and_the_partial_goes(tmp_path, server):
    server.files["good.pth"] = Served(GOOD[:-100])  # truncated at the source, with an honest length
    model = cached(tmp_path, server)
    assert "offers" in refused(model)
    unknown = cached(tmp_path, server, published=False, name="n")  # nothing known: the format check catches it
    assert "not a PyTorch checkpoint" in refused(unknown)
    assert not unknown.partial.exists() and not unknown.path.exists()


def test_an_http_error_is_one_line_naming_the_status_and_what_was_kept(tmp_path, server):
    model = cached(tmp_path, server, file="missing.pth")
    message = refused(model)
    assert "HTTP 404" in message and "kept" not in message
    half = _half_partial(model)
    message = refused(model)
    assert "HTTP 404" in message and f"{human_size(half)} kept" in message


def test_not_enough_space_for_the_rest_is_refused_before_the_request(tmp_path, server, monkeypatch):
    model = cached(tmp_path, server)
    half = _half_partial(model)
    free = len(GOOD) - half  # exactly what the rest needs: accepted
    monkeypatch.setattr(download.shutil, "disk_usage", lambda _: SimpleNamespace(free=free))
    assert fetch(model).read_bytes() == GOOD
    model.path.unlink()
    _half_partial(model)
    server.requests.clear()
    monkeypatch.setattr(download.shutil, "disk_usage", lambda _: SimpleNamespace(free=free - 1))
    message = refused(model)
    assert "not enough disk space" in message and server.requests == []


def test_write_atomic_writes_beside_the_target_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    import streamer.models.cache as cache

    renames = []
    real_replace = os.replace
    monkeypatch.setattr(cache.os, "replace", lambda src, dst: (renames.append((Path(src), Path(dst))),
                                                               real_replace(src, dst)))
    target = tmp_path / METADATA_NAME
    write_atomic(target, b"one")
    write_atomic(target, b"two")
    assert target.read_bytes() == b"two" and [p.name for p in tmp_path.iterdir()] == [METADATA_NAME]
    # Renamed from beside the target (one file system: the rename is atomic), under a hidden name.
    assert all(src.parent == tmp_path and src.name.startswith(f".{METADATA_NAME}.") and dst == target
               for src, dst in renames) and len(renames) == 2
    with pytest.raises(OSError):
        write_atomic(tmp_path / "missing" / "x", b"three")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "inside").write_text("")
    with pytest.raises(OSError):  # the rename fails: the temporary file goes
        write_atomic(tmp_path / "folder", b"four")
    assert sorted(p.name for p in tmp_path.iterdir()) == [METADATA_NAME, "folder"]


# -- what is recorded and said: exact metadata, messages, progress ------------------------------------------------
def _metadata(model: CachedModel, source: str, origin: str) -> str:
    return json.dumps({"name": model.entry.name, "filename": model.entry.filename, "url": model.entry.url,
                       "source": source, "size": len(GOOD), "sha256": hashlib.sha256(GOOD).hexdigest(),
                       "sha256_origin": origin, "licence": "test"}, indent=2)


def test_a_download_names_itself_and_records_exact_metadata(tmp_path, server, caplog):
    model = cached(tmp_path, server)
    assert fetch(model) == model.path
    assert server.user_agents == [download.USER_AGENT]
    assert model.metadata_path.read_text() == _metadata(model, model.entry.url, "publisher")
    assert sorted(p.name for p in model.folder.iterdir()) == [METADATA_NAME, "m.pth"]
    caplog.set_level("INFO", logger="streamer.models.download")
    assert fetch(model) == model.path and len(server.requests) == 1
    assert [r.getMessage() for r in caplog.records] == [f"m is already in the cache: {model.path}"]


def test_a_copy_brought_in_by_hand_keeps_the_origin_of_the_recorded_checksum(tmp_path, server):
    good = tmp_path / "good.pth"
    good.write_bytes(GOOD)
    model = cached(tmp_path, server, published=False)
    model.folder.mkdir(parents=True)
    sha = hashlib.sha256(GOOD).hexdigest()
    for previous, origin in (({"sha256": sha}, "first download"), ({"sha256": sha, "sha256_origin": "mirror"}, "mirror"),
                             ({}, "first download")):
        write_atomic(model.metadata_path, json.dumps(previous).encode())
        assert fetch(model, good) == model.path
        assert model.metadata_path.read_text() == _metadata(model, f"file {good.resolve()}", origin)
        model.path.unlink()


def test_verification_messages_name_the_file_the_figures_and_the_origin(tmp_path, server):
    model = cached(tmp_path, server)
    short, tampered = tmp_path / "short.pth", tmp_path / "tampered.pth"
    short.write_bytes(GOOD[:-1])
    tampered.write_bytes(TAMPERED)
    assert refused(model, short) == (f"--from {short} is {len(GOOD) - 1} bytes, but m is {len(GOOD)} bytes: it is "
                                     "truncated or another file")
    got, want = hashlib.sha256(TAMPERED).hexdigest(), hashlib.sha256(GOOD).hexdigest()
    assert refused(model, tampered) == (f"--from {tampered} fails its checksum (SHA-256 {got[:12]}..., published "
                                        f"{want[:12]}...): it is corrupt or another file")
    server.files["good.pth"] = Served(TAMPERED)
    assert refused(model) == (f"the download of m fails its checksum (SHA-256 {got[:12]}..., published "
                              f"{want[:12]}...): it is corrupt or another file")
    unknown = cached(tmp_path, server, published=False, name="n")
    unknown.folder.mkdir(parents=True)
    write_atomic(unknown.metadata_path, json.dumps({"sha256": want}).encode())
    assert refused(unknown, tampered) == (
        f"--from {tampered} fails its checksum (SHA-256 {got[:12]}..., recorded at the first download in "
        f"{unknown.folder} {want[:12]}...): it is corrupt or another file")
    missing, fifo = tmp_path / "missing.pth", tmp_path / "fifo.pth"
    assert refused(model, missing) == f"--from {missing}: no such file"
    os.mkfifo(fifo)
    assert refused(model, fifo) == f"--from {fifo} is not a regular file"


def test_a_web_page_instead_of_the_file_is_refused_with_what_to_do(tmp_path, server):
    server.files["good.pth"] = Served(b"<html>sign in</html>", content_type="text/html; charset=utf-8")
    model = cached(tmp_path, server, published=False)
    assert refused(model) == (f"{model.entry.url} answered with a web page, not the checkpoint: download it from "
                              "https://example.invalid/page, then `persense models fetch m --from FILE`")
    hinted = CachedModel(model.entry.__class__(**{**model.entry.__dict__, "manual_hint": "ask the vendor"}),
                         model.root)
    assert refused(hinted) == f"{model.entry.url} answered with a web page, not the checkpoint: ask the vendor"
    assert not model.path.exists() and not model.partial.exists()


@pytest.mark.parametrize("length", ["", "4k"])
def test_a_body_without_a_usable_length_is_read_to_its_end(tmp_path, server, length):
    server.files["good.pth"].length_header = length
    assert fetch(cached(tmp_path, server)).read_bytes() == GOOD


def test_a_partial_longer_than_the_file_starts_again_from_zero(tmp_path, server, capsys, monkeypatch):
    from tqdm import tqdm

    monkeypatch.setattr(tqdm, "monitor_interval", 0)  # no monitor thread left behind
    model = cached(tmp_path, server)
    model.folder.mkdir(parents=True)
    model.partial.write_bytes(b"x" * (len(GOOD) + 5))  # the server answers 416
    capsys.readouterr()
    assert download.fetch(model, progress=True).read_bytes() == GOOD
    assert server.requests == [("/good.pth", f"bytes={len(GOOD) + 5}-"), ("/good.pth", None)]
    assert "m: 100%" in capsys.readouterr().err  # the second attempt keeps the caller's progress setting


def test_network_failures_are_one_line_with_the_cause(tmp_path, server, monkeypatch):
    import socket

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    model = cached(tmp_path, server)
    model = CachedModel(model.entry.__class__(**{**model.entry.__dict__, "url": f"http://127.0.0.1:{port}/m.pth"}),
                        model.root)
    assert refused(model) == (f"cannot download m from http://127.0.0.1:{port}/m.pth: [Errno 111] Connection "
                              "refused; on a machine without internet, copy the file in by hand: persense models "
                              "fetch m --from FILE")
    # A server that accepts and never answers: the transfer gives up after the timeout.
    monkeypatch.setattr(download, "TIMEOUT_S", 0.3)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/m.pth"
        model = CachedModel(model.entry.__class__(**{**model.entry.__dict__, "url": url}), model.root)
        assert refused(model).startswith(f"cannot download m from {url}: timed out; ")


class _FailingFile(io.BytesIO):
    def __init__(self, fail_on: str, errno_: int):
        super().__init__()
        self.fail_on, self.errno_ = fail_on, errno_

    def write(self, data):
        if self.fail_on == "write":
            raise OSError(self.errno_, os.strerror(self.errno_))
        return super().write(data)

    def flush(self):
        if self.fail_on == "flush":
            raise OSError(self.errno_, os.strerror(self.errno_))

    def fileno(self):
        return os.open(os.devnull, os.O_RDONLY)


@pytest.mark.parametrize("fail_on", ["open", "write", "flush"])
def test_write_failures_are_one_line_naming_the_cause(tmp_path, server, monkeypatch, fail_on):
    import errno

    model = cached(tmp_path, server)
    model.prepare_folder()
    partial = model.partial
    real_open = Path.open

    def failing_open(self, *args, **kwargs):
        if self != partial:
            return real_open(self, *args, **kwargs)
        if fail_on == "open":
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return _FailingFile(fail_on, errno.ENOSPC)

    monkeypatch.setattr(Path, "open", failing_open)
    expected = (f"cannot write {partial}: Input/output error" if fail_on == "open" else
                f"disk full while writing {partial}: free some space, then run the command again (a download "
                "resumes where it stopped)")
    assert refused(model) == expected


def test_a_copy_that_cannot_be_written_is_one_line(tmp_path, server, monkeypatch):
    import errno

    good = tmp_path / "good.pth"
    good.write_bytes(GOOD)
    model = cached(tmp_path, server)

    def full(*_):
        raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))

    monkeypatch.setattr(download.shutil, "copyfile", full)
    assert refused(model, good).startswith(f"disk full while writing {model.partial}: ")


def test_a_read_only_cache_is_one_line(tmp_path, server, monkeypatch):
    import errno
    import tempfile

    model = cached(tmp_path, server)
    real = tempfile.NamedTemporaryFile

    def read_only(*args, dir=None, **kwargs):  # as a read-only mount answers (root may write anywhere else)
        if dir is not None and Path(dir) == model.folder:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr("streamer.models.cache.tempfile.NamedTemporaryFile", read_only)
    assert refused(model) == (f"model cache {model.root} is not writable (Read-only file system): choose another "
                              "with --cache-dir DIR or $PERSENSE_MODELS")


def test_the_progress_bar_counts_from_the_resumed_byte_to_the_whole_size(tmp_path, server, capsys, monkeypatch):
    from tqdm import tqdm  # the bar's own size formatting (binary kilo: 1024)

    # No monitor thread left behind: a process forked later (mutmut's workers) would inherit its lock held.
    monkeypatch.setattr(tqdm, "monitor_interval", 0)
    model = cached(tmp_path, server)
    half = _half_partial(model)
    capsys.readouterr()
    assert download.fetch(model, progress=True).read_bytes() == GOOD
    err = capsys.readouterr().err
    whole = tqdm.format_sizeof(len(GOOD), divisor=1024)
    assert f"m:  50%|█████     | {tqdm.format_sizeof(half, divisor=1024)}/{whole} [00:00<?, ?B/s]" in err
    assert f"m: 100%|██████████| {whole}/{whole} [" in err
    model.path.unlink()
    assert fetch(model).read_bytes() == GOOD and capsys.readouterr().err == ""
