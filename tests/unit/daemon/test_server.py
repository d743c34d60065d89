"""Binding the sockets: never in a directory another user could swap the socket in."""

from __future__ import annotations

import os
import stat
from pathlib import Path

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
