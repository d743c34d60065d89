"""Which uid a client trusts on the daemon's socket: the directory's owner only when no other
user could have made that directory (modelshelf.trust; the real sockets and users are in
tests/integration/test_sockets.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modelshelf import trust


def test_a_directory_in_a_place_others_may_write_does_not_vouch(tmp_path: Path) -> None:
    shared = tmp_path / "tmp"
    shared.mkdir()
    shared.chmod(0o1777)  # as /tmp
    planted = shared / "modelshelf-1000"
    planted.mkdir(mode=0o755)
    owner, unsafe = trust._owner(str(planted))
    assert owner == os.getuid()
    assert unsafe == f"{shared} is writable by others (mode 1777)"


def test_only_root_and_the_owner_may_own_the_way_up(tmp_path: Path) -> None:
    assert os.geteuid() == 0, "chown needs root: the suite runs as root (.ci/run does)"
    top = tmp_path / "run"
    top.mkdir(mode=0o755)
    own = top / "modelshelf"
    own.mkdir(mode=0o755)
    os.chown(own, 4321, 4321)
    # tmp_path lies in /tmp, which anyone may write: nothing under it vouches for 4321
    assert trust._owner(str(own))[1].endswith("is writable by others (mode 1777)")
    os.chown(top, 5555, 5555)
    assert trust._owner(str(own)) == (4321, f"{top} belongs to uid 5555")


def test_a_symbolic_link_of_another_user_on_the_way_does_not_vouch(tmp_path: Path) -> None:
    """/tmp/modelshelf-<uid> planted as a link to the planter's own home (every directory of
    it theirs or root's, none writable by others): the socket's directory, resolved, passed,
    and a client trusted their daemon (a probe, as real users). Links of root's or the
    client's own are followed, and their targets walked the same way."""
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    (home / "modelshelf.sock").touch()
    link = tmp_path / "modelshelf-1000"
    link.symlink_to(home)
    assert trust.foreign_links(str(link / "modelshelf.sock")) == ""  # the client's own (root) link
    os.lchown(link, 4321, 4321)
    assert trust.foreign_links(str(link / "modelshelf.sock")) == (
        f"{link} is a symbolic link of uid 4321"
    )
    socket_link = home / "s.sock"  # a socket that is itself another user's link
    socket_link.symlink_to(home / "modelshelf.sock")
    os.lchown(socket_link, 4321, 4321)
    assert trust.foreign_links(str(socket_link)).endswith("is a symbolic link of uid 4321")
    ours = tmp_path / "ours"
    ours.symlink_to(link)  # root's link to another user's link: walked, and refused
    assert trust.foreign_links(str(ours / "modelshelf.sock")).endswith("symbolic link of uid 4321")


def test_the_root_directory_vouches_for_root() -> None:
    assert trust._owner("/") == (0, "")


@pytest.mark.parametrize(("raw", "uid"), [("", None), ("998", 998), (" 0 ", 0)])
def test_daemon_uid_from_env(monkeypatch: pytest.MonkeyPatch, raw: str, uid: int | None) -> None:
    monkeypatch.setenv(trust.ENVIRONMENT, raw)
    assert trust.daemon_uid_from_env() == uid


@pytest.mark.parametrize("raw", ["-1", "modelshelf", "1.5", "\u00b2"])
def test_a_malformed_daemon_uid_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    monkeypatch.setenv(trust.ENVIRONMENT, raw)
    with pytest.raises(ValueError, match="MODELSHELF_DAEMON_UID must be a numeric uid"):
        trust.daemon_uid_from_env()
