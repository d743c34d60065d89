"""Binding the sockets: never in a directory another user could swap the socket in."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from modelshelfd.server import StartupError, _bind


@pytest.mark.parametrize(
    ("mode", "owner"), [(0o777, None), (0o775, None), (0o755, 54321), (0o1777, 54321)]
)
def test_a_socket_directory_others_may_write_is_refused(
    tmp_path: Path, mode: int, owner: int | None
) -> None:
    directory = tmp_path / "run"
    directory.mkdir()
    os.chmod(directory, mode)
    if owner is not None:
        os.chown(directory, owner, owner)
    with pytest.raises(StartupError, match="must belong to uid"):
        _bind(str(directory / "s.sock"), 0o600)
    assert not (directory / "s.sock").exists()


def test_a_private_directory_is_created_and_used(tmp_path: Path) -> None:
    path = tmp_path / "new" / "s.sock"
    sock = _bind(str(path), 0o600)
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_ISSOCK(path.stat().st_mode)
    finally:
        sock.close()


def test_a_reply_over_the_frame_limit_becomes_a_counted_internal_error() -> None:
    """Every listing op pages; should a reply still outgrow one frame, the client gets a typed
    ``internal`` error (counted), not a closed connection."""
    import collections
    from types import SimpleNamespace

    from modelshelf import wire
    from modelshelfd.server import Server

    stats: collections.Counter[str] = collections.Counter()
    state: Any = SimpleNamespace(shelf=SimpleNamespace(stats=stats))
    big = {"ok": True, "rows": ["x" * 1000] * 100}
    with pytest.raises(wire.ProtocolError):
        wire.encode(big)  # what the send would have raised
    reply = Server._unsendable(state, {"op": "ls", "id": 7}, big)
    assert reply["ok"] is False and reply["error"] == "internal" and reply["id"] == 7
    assert "over the 65536-byte message limit" in reply["message"]
    assert stats["refused_internal"] == 1
    wire.encode(reply)  # the error itself fits
    # a NaN (a probe: a priority computed from a hostile learned.json) closed the admin
    # connection with an exception nobody retrieved; the client read "daemon stopped"
    nan = {"ok": True, "rows": [{"priority": float("nan")}]}
    with pytest.raises(ValueError, match="Out of range float"):
        wire.encode(nan)
    reply = Server._unsendable(state, {"op": "ls", "id": 8}, nan)
    assert reply["error"] == "internal" and "a number JSON cannot carry" in reply["message"]
    assert stats["refused_internal"] == 2
    wire.encode(reply)
