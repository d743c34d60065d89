"""Who answers on the daemon's socket: checked before anything is sent, so that a client never
talks to a socket another user planted.

Without ``XDG_RUNTIME_DIR`` the default socket lives in ``/tmp/modelshelf-<uid>/``, and any user
may create that directory first and listen in it. So after connecting, a client reads the uid
of the process that listens (``SO_PEERCRED``) and accepts:

- with ``daemon_uid`` given (``Client(daemon_uid=...)``, else ``$MODELSHELF_DAEMON_UID``): that
  uid, and only it;
- otherwise root, its own uid, or the owner of the socket's directory, the last one only if no
  other user could have made that directory: every directory from it up to ``/`` must belong to
  root or to that owner and be writable by its owner alone. ``/tmp`` is writable by everyone,
  so a directory in it counts only if it is root's or the client's own.
"""

from __future__ import annotations

import os
import socket
import stat
import struct

from .errors import UntrustedDaemon

__all__ = ["ENVIRONMENT", "check_daemon", "daemon_uid_from_env"]

ENVIRONMENT = "MODELSHELF_DAEMON_UID"
_PEERCRED = struct.Struct("3i")  # pid, uid, gid


def daemon_uid_from_env() -> int | None:
    """``$MODELSHELF_DAEMON_UID`` as a uid; unset or empty: None."""
    raw = os.environ.get(ENVIRONMENT, "").strip()
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit()):
        raise ValueError(f"{ENVIRONMENT} must be a numeric uid like 998, got {raw!r}")
    return int(raw)


def check_daemon(sock: socket.socket, path: str, daemon_uid: int | None) -> None:
    """Raise UntrustedDaemon unless the process listening on ``path`` (connected as ``sock``)
    runs as a uid this client trusts (the module docstring says which)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    pid, uid, _ = _PEERCRED.unpack(raw)
    if daemon_uid is not None:
        if uid == daemon_uid:
            return
        expected = f"uid {daemon_uid} (daemon_uid, or {ENVIRONMENT})"
    else:
        me = os.getuid()
        if uid in (0, me):
            return
        directory = os.path.dirname(os.path.realpath(path))
        owner, unsafe = _owner(directory)
        unsafe = unsafe or foreign_links(path)
        if uid == owner and not unsafe:
            return
        expected = f"root or this process's uid {me}"
        if owner is None:
            expected += f" (the socket's directory {directory} cannot be read)"
        elif unsafe:
            expected += (
                f"; the socket's directory {directory} belongs to uid {owner}, but {unsafe}, "
                "so another user could have made it"
            )
        else:
            expected += f", or uid {owner}, the owner of the socket's directory {directory}"
    raise UntrustedDaemon(
        f"the process answering on {path} (pid {pid}) runs as uid {uid}; expected {expected}. "
        "It may be an impostor: remove that socket's directory if it is not yours, or set "
        f"{ENVIRONMENT} (Client(daemon_uid=...)) to the daemon's uid"
    )


def foreign_links(path: str) -> str:
    """Why a symbolic link on the way to ``path`` (the socket included) does not vouch for
    the daemon ("" if none is in the way): a link is as good as its owner, who may point it
    anywhere, at a directory of their own that passes every other check. A link of root's or
    the client's own is followed, and its target walked the same way."""
    me = os.getuid()
    parts = [p for p in os.path.abspath(path).split(os.sep) if p]
    probe, followed = os.sep, 0
    while parts:
        probe = os.path.join(probe, parts.pop(0))
        try:
            st = os.lstat(probe)
        except OSError:
            return f"{probe} cannot be read"
        if stat.S_ISLNK(st.st_mode):
            if st.st_uid not in (0, me):
                return f"{probe} is a symbolic link of uid {st.st_uid}"
            followed += 1
            if followed > _MAX_LINKS:
                return f"{path} goes through more than {_MAX_LINKS} symbolic links"
            target = os.path.join(os.path.dirname(probe), os.readlink(probe))
            parts = [p for p in os.path.normpath(target).split(os.sep) if p] + parts
            probe = os.sep
    return ""


_MAX_LINKS = 40  # as the kernel's own bound on a path


def _owner(directory: str) -> tuple[int | None, str]:
    """The directory's owner, and why it does not vouch for the daemon ("" if it does): some
    directory on the way up is writable by someone other than root and that owner."""
    try:
        owner = os.stat(directory).st_uid
    except OSError:
        return None, "it cannot be read"
    probe = directory
    while True:
        try:
            st = os.stat(probe)
        except OSError:
            return owner, f"{probe} cannot be read"
        if st.st_uid not in (0, owner):
            return owner, f"{probe} belongs to uid {st.st_uid}"
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return owner, f"{probe} is writable by others (mode {stat.S_IMODE(st.st_mode):o})"
        parent = os.path.dirname(probe)
        if parent == probe:
            return owner, ""
        probe = parent
