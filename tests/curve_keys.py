"""Key sets and refusals shared by the exact tests of streamer.stream.security."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamer.errors import UserError
from streamer.stream.security import write_keys


def refused(call, *args) -> str:
    """The one-line UserError message that call(*args) raises (the test fails when it raises none)."""
    with pytest.raises(UserError) as caught:
        call(*args)
    return str(caught.value)


def key_set(folder: Path) -> Path:
    """Write a server pair (server/), an authorized client (clients/plc, its public key also in authorized/) and a
    stranger whose key is not in authorized/ (stranger/) under `folder` -> `folder`."""
    for subfolder, name in (("server", "server"), ("clients", "plc"), ("stranger", "stranger")):
        write_keys(folder / subfolder, name)
    authorized = folder / "authorized"
    authorized.mkdir()
    (authorized / "plc.key").write_bytes((folder / "clients" / "plc.key").read_bytes())
    return folder
