"""CURVE keys (streamer.stream.security) from the attacker's side: near-miss and damaged key files, a folder of
authorized keys with something else in it, and the exposure rule's exact refusals. Key files are written by pyzmq;
each test takes milliseconds, so tools/mutation.py can run them for every mutant (the authenticator at work, with
sockets: tests/test_security_auth_exact.py).
"""

from __future__ import annotations

import logging
import os
import re
import stat
from pathlib import Path

import pytest
import zmq
import zmq.auth
import zmq.utils.z85

from curve_keys import key_set, refused
from streamer.stream.security import (
    KEYS_HINT, CurveServer, _NamedKeys, apply_options, check_exposure, client_socket_options,
    key_names, load_keypair, load_public_key, write_keys,
)

pytestmark = pytest.mark.skipif(not zmq.has("curve"), reason="this libzmq was built without CURVE")


@pytest.fixture
def keys(tmp_path):
    return key_set(tmp_path)


def _rewrite(path: Path, field: str, value: str) -> None:
    """Replace the quoted value of `field` (public-key, secret-key) in a certificate file."""
    text = path.read_text()
    path.write_text(re.sub(rf'({field} = ").*(")', lambda m: m.group(1) + value + m.group(2), text))


# -- writing keys ---------------------------------------------------------------------------------------------
def test_written_keys_are_a_pyzmq_pair_with_modes_600_and_644_and_nothing_left_behind(tmp_path):
    folder = tmp_path / "a" / "b"  # made with its parents
    public, secret = write_keys(folder, "line1")
    assert (public, secret) == (folder / "line1.key", folder / "line1.key_secret")
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600 and stat.S_IMODE(public.stat().st_mode) == 0o644
    assert sorted(p.name for p in folder.iterdir()) == ["line1.key", "line1.key_secret"]
    pub, sec = zmq.auth.load_certificate(secret)
    assert zmq.auth.load_certificate(public) == (pub, None) and len(sec) == 40
    assert zmq.curve_public(sec) == pub  # the two halves belong together


@pytest.mark.parametrize("name", ["", "a/b", ".hidden", "../up"])
def test_a_key_name_that_is_no_plain_file_name_isrefused(tmp_path, name):
    assert refused(write_keys, tmp_path, name) == f"--name must be a plain file name, got {name!r}"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("existing", ["plc.key", "plc.key_secret"])
def test_an_existing_half_of_a_pair_is_never_overwritten(tmp_path, existing):
    (tmp_path / existing).write_text("keep me")
    assert refused(write_keys, tmp_path, "plc") == (f"{tmp_path / existing} exists; remove it first or choose "
                                                    "another --name")
    assert (tmp_path / existing).read_text() == "keep me" and len(list(tmp_path.iterdir())) == 1


def test_pairs_are_staged_hidden_inside_their_folder_and_several_may_share_it(tmp_path, monkeypatch):
    staged = []
    create = zmq.auth.create_certificates

    def spy(folder, name):
        staged.append(Path(folder))
        assert stat.S_IMODE(Path(folder).stat().st_mode) == 0o700  # nobody else can look in while it is made
        return create(folder, name)

    monkeypatch.setattr(zmq.auth, "create_certificates", spy)
    write_keys(tmp_path, "plc")
    write_keys(tmp_path, "scada")  # the folder exists now: fine
    # Staged beside the final names (one filesystem: the renames are atomic), hidden, and gone afterwards.
    assert [folder.parent for folder in staged] == [tmp_path, tmp_path]
    assert all(folder.name.startswith(".keys-") and not folder.exists() for folder in staged)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plc.key", "plc.key_secret", "scada.key",
                                                          "scada.key_secret"]


def test_a_failure_without_an_os_reason_is_named_by_its_message(tmp_path, monkeypatch):
    def broken(folder, name):
        raise OSError("the key generator failed\nmore detail")

    monkeypatch.setattr(zmq.auth, "create_certificates", broken)
    assert refused(write_keys, tmp_path, "plc") == f"cannot write keys in {tmp_path}: the key generator failed"
    assert [p.name for p in tmp_path.iterdir()] == []  # the staging folder went too


def test_an_unwritable_key_folder_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    message = refused(write_keys, blocker / "keys", "plc")
    assert message.startswith(f"cannot write keys in {blocker / 'keys'}: ") and "\n" not in message
    assert message.endswith(os.strerror(20)) or message.endswith(os.strerror(17))  # not a directory / exists


# -- reading keys ---------------------------------------------------------------------------------------------
def test_a_key_pair_loads_as_pyzmq_reads_it(keys):
    secret_file = keys / "clients" / "plc.key_secret"
    expected = zmq.auth.load_certificate(secret_file)
    assert load_keypair(secret_file, "client key") == expected
    assert load_public_key(keys / "clients" / "plc.key", "server public key") == expected[0]
    assert load_public_key(secret_file, "server public key") == expected[0]


def test_the_public_half_is_no_key_pair(keys):
    assert refused(load_keypair, keys / "none.key_secret", "server key") == (
        f"server key not found: {keys / 'none.key_secret'}")
    path = keys / "server" / "server.key"
    assert refused(load_keypair, path, "server key") == (f"server key {path} holds no secret key (give the "
                                                          ".key_secret file)")


@pytest.mark.parametrize("damage", ["", "short", "39", "41", "inner space", "not z85", "overflow"])
def test_a_damaged_key_is_refused_in_one_line_before_zeromq_sees_it(keys, damage):
    good = zmq.auth.load_certificate(keys / "server" / "server.key_secret")[0].decode()
    bad = {"": "", "short": good[:10], "39": good[:-1], "41": good + "0", "inner space": good[:20] + " " + good[21:],
           "not z85": good[:-1] + "~", "overflow": "%" * 40}[damage]
    public = keys / "server" / "server.key"
    _rewrite(public, "public-key", bad)
    message = refused(load_public_key, public, "server public key")
    if damage == "":  # pyzmq finds no key at all
        assert message.startswith(f"server public key {public} is not a ZeroMQ certificate")
    else:
        assert message == f"server public key {public} is not a ZeroMQ certificate (no 40-character Z85 public-key)"
    secret_file = keys / "clients" / "plc.key_secret"
    secret = zmq.auth.load_certificate(secret_file)[1].decode()
    _rewrite(secret_file, "secret-key", {"": "", "short": secret[:10], "39": secret[:-1], "41": secret + "0",
                                         "inner space": secret[:20] + " " + secret[21:], "not z85": secret[:-1] + "~",
                                         "overflow": "%" * 40}[damage])
    message = refused(load_keypair, secret_file, "client key")
    if damage == "":
        assert message == f"client key {secret_file} holds no secret key (give the .key_secret file)"
    else:
        assert message == (f"client key {secret_file} holds a damaged secret-key (not 40 Z85 characters): make a new "
                           "pair with persense keys")


def test_a_missing_or_foreign_key_file_is_one_line(tmp_path):
    assert refused(load_public_key, tmp_path / "none.key", "server public key") == (
        f"server public key not found: {tmp_path / 'none.key'}")
    assert refused(load_public_key, tmp_path, "server public key") == f"server public key not found: {tmp_path}"
    junk = tmp_path / "junk.key"
    junk.write_text("# a note\nsecret-key = \"x\"\n")
    assert refused(load_public_key, junk, "server public key") == (
        f"server public key {junk} is not a ZeroMQ certificate: No public key found in {junk}")
    assert refused(load_public_key, str(junk), "a key").startswith(f"a key {junk} is not")  # a str path too


@pytest.mark.parametrize("mode, warned", [(0o600, False), (0o400, False), (0o640, True), (0o604, True),
                                          (0o610, True), (0o601, True)])
def test_a_secret_key_others_may_read_is_loaded_with_a_warning(keys, caplog, mode, warned):
    secret_file = keys / "server" / "server.key_secret"
    secret_file.chmod(mode)
    with caplog.at_level(logging.WARNING, logger="streamer.stream.security"):
        load_keypair(secret_file, "server key")
    expected = [f"server key {secret_file} is readable by others (mode {mode:o}): chmod 600 it"] if warned else []
    assert [r.getMessage() for r in caplog.records] == expected


def test_client_options_carry_the_clients_pair_and_the_servers_public_key(keys):
    options = client_socket_options(str(keys / "clients" / "plc.key_secret"), str(keys / "server" / "server.key"))
    public, secret = zmq.auth.load_certificate(keys / "clients" / "plc.key_secret")
    server = zmq.auth.load_certificate(keys / "server" / "server.key")[0]
    assert options == {zmq.CURVE_PUBLICKEY: public, zmq.CURVE_SECRETKEY: secret, zmq.CURVE_SERVERKEY: server}
    # Each file is named for what it should have been.
    assert refused(client_socket_options, keys / "clients" / "plc.key", keys / "server" / "server.key") \
        .startswith("client key ")
    assert refused(client_socket_options, keys / "clients" / "plc.key_secret", keys / "none.key") == (
        f"server public key not found: {keys / 'none.key'}")


def test_options_are_set_on_the_socket():
    ctx = zmq.Context()
    try:
        sock = ctx.socket(zmq.REQ)
        apply_options(sock, {zmq.LINGER: 7, zmq.SNDHWM: 3})
        assert (sock.getsockopt(zmq.LINGER), sock.getsockopt(zmq.SNDHWM)) == (7, 3)
    finally:
        ctx.destroy(linger=0)  # closes the socket too, also when an assertion failed (term() would wait for it)


# -- the server and its folder of authorized keys -------------------------------------------------------------
def test_a_curve_server_loads_its_pair_and_asks_the_authenticator(keys):
    server = CurveServer.load(str(keys / "server" / "server.key_secret"), str(keys / "authorized"))
    public, secret = zmq.auth.load_certificate(keys / "server" / "server.key_secret")
    assert server == CurveServer(public, secret, keys / "authorized")
    assert server.socket_options() == {zmq.CURVE_SERVER: 1, zmq.CURVE_PUBLICKEY: public, zmq.CURVE_SECRETKEY: secret,
                                       zmq.ZAP_DOMAIN: b"persense"}


def test_an_authorized_keys_folder_must_exist_and_hold_keys_and_only_keys(keys):
    server_key = keys / "server" / "server.key_secret"
    missing = keys / "nothing"
    assert refused(CurveServer.load, server_key, missing) == f"authorized keys folder not found: {missing}"
    assert refused(CurveServer.load, server_key, keys / "server" / "server.key") == (
        f"authorized keys folder not found: {keys / 'server' / 'server.key'}")
    empty = keys / "empty"
    empty.mkdir()
    (empty / "plc.key_secret").write_bytes((keys / "clients" / "plc.key_secret").read_bytes())  # not *.key
    assert refused(CurveServer.load, server_key, empty) == (
        f"no client public keys (*.key) in the authorized keys folder {empty}")
    folder = keys / "authorized"
    (folder / "notes.key").write_text("these are not keys\n")
    assert refused(CurveServer.load, server_key, folder) == (
        f"authorized keys folder {folder}: No public key found in {folder / 'notes.key'} (every *.key file there "
        "must be a public key from persense keys)")
    (folder / "notes.key").unlink()
    (folder / "sub.key").mkdir()  # a folder by a key's name
    assert refused(CurveServer.load, server_key, folder).startswith(f"authorized keys folder {folder}: ")
    assert refused(CurveServer.load, keys / "server" / "server.key", folder).startswith("server key ")


def test_key_names_are_the_key_files_stems_and_unreadable_ones_are_skipped(keys):
    folder = keys / "authorized"
    (folder / "junk.key").write_text("no key\n")
    (folder / "stranger.key_secret").write_bytes((keys / "stranger" / "stranger.key_secret").read_bytes())
    (folder / "zed.key").write_bytes((keys / "stranger" / "stranger.key").read_bytes())
    plc = zmq.auth.load_certificate(folder / "plc.key")[0].decode()
    stranger = zmq.auth.load_certificate(folder / "zed.key")[0].decode()
    assert key_names(str(folder)) == {plc: "plc", stranger: "zed"}
    (folder / "also-plc.key").write_bytes((folder / "plc.key").read_bytes())
    assert key_names(folder)[plc] == "plc"  # the same key twice: the last file in name order names it


def test_the_authenticator_names_known_keys_and_shows_unknown_ones_by_their_start(keys):
    ctx = zmq.Context()
    try:
        plc = zmq.auth.load_certificate(keys / "clients" / "plc.key")[0]
        stranger = zmq.auth.load_certificate(keys / "stranger" / "stranger.key")[0]
        named = _NamedKeys(ctx, {plc.decode(): "plc"})
        assert named.curve_user_id(zmq.utils.z85.decode(plc)) == "plc"
        assert named.curve_user_id(zmq.utils.z85.decode(stranger)) == "key " + stranger.decode()[:8]
    finally:
        ctx.term()


# -- exposure ---------------------------------------------------------------------------------------------------
def test_an_exposed_socket_without_curve_is_refused_naming_every_exposed_one():
    endpoints = {"publish": "tcp://0.0.0.0:5556", "control": "tcp://10.0.0.5:5557", "status": None,
                 "local": "tcp://127.0.0.1:5558"}
    assert refused(check_exposure, endpoints, False, False) == (
        "refusing to bind publish tcp://0.0.0.0:5556, control tcp://10.0.0.5:5557 beyond loopback without CURVE: "
        + KEYS_HINT)
    assert "persense keys DIR --name server" in KEYS_HINT and "--insecure" in KEYS_HINT


def test_loopback_or_curve_needs_nothing_and_the_opt_out_is_logged_once_when_asked(caplog):
    exposed = {"publish": "tcp://*:5556", "control": "ipc:///tmp/x", "fleet": "tcp://0.0.0.0:7"}
    with caplog.at_level(logging.DEBUG, logger="streamer.stream.security"):
        check_exposure({"publish": "tcp://127.0.0.1:1", "control": None}, False, False)
        check_exposure(exposed, True, False)
        check_exposure(exposed, True, True)
        check_exposure(exposed, False, True, warn=False)
        assert caplog.records == []
        check_exposure(exposed, False, True)
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "INSECURE: publish tcp://*:5556, fleet tcp://0.0.0.0:7 reachable beyond this machine without "
                    "authentication (--insecure); anyone who reaches it can read results, pause the line or replace "
                    "the product")]


def test_persense_run_with_a_damaged_server_key_exits_2_with_one_line(keys, capsys):
    from streamer.cli import main

    secret_file = keys / "server" / "server.key_secret"
    _rewrite(secret_file, "secret-key", zmq.auth.load_certificate(secret_file)[1].decode()[:-1])
    code = main(["run", "--publish", "tcp://127.0.0.1:*", "--control", "tcp://127.0.0.1:*", "--metrics-port", "0",
                 "--max-frames", "1", "--cache-dir", str(keys / "cache"), "--server-key", str(secret_file),
                 "--authorized-keys", str(keys / "authorized")])
    err = capsys.readouterr().err
    assert code == 2 and "holds a damaged secret-key" in err and "Traceback" not in err
