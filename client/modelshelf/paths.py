"""Default locations shared by the client, the CLI and the daemon (which imports this module).

Unprivileged users get per-user paths (``$XDG_RUNTIME_DIR``, ``~/.cache``, ``~/.local/share``);
root gets the system ones (``/run``, ``/var/cache``, ``/var/lib``). ``MODELSHELF_SOCKET`` and
``MODELSHELF_ADMIN_SOCKET`` override the socket paths for clients and the daemon alike.
"""

from __future__ import annotations

import os
from pathlib import Path

SOCKET_NAME = "modelshelf.sock"
ADMIN_SOCKET_NAME = "admin.sock"


def _is_root() -> bool:
    return os.geteuid() == 0


def runtime_dir() -> Path:
    """Where the sockets live when nothing else is configured."""
    if _is_root():
        return Path("/run/modelshelf")
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return Path(xdg) / "modelshelf"
    # /tmp is shared by everyone: a per-uid directory, created 0700 by the daemon
    return Path(f"/tmp/modelshelf-{os.getuid()}")


def default_socket() -> str:
    return os.environ.get("MODELSHELF_SOCKET") or str(runtime_dir() / SOCKET_NAME)


def default_admin_socket() -> str:
    """``MODELSHELF_ADMIN_SOCKET``, else ``admin.sock`` next to the client socket, as the
    daemon places it (so a ``MODELSHELF_SOCKET`` that moves the daemon moves both)."""
    return os.environ.get("MODELSHELF_ADMIN_SOCKET") or str(
        Path(default_socket()).parent / ADMIN_SOCKET_NAME
    )


def default_cache_dir() -> Path:
    if _is_root():
        return Path("/var/cache/modelshelf")
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "modelshelf"


def default_data_dir() -> Path:
    if _is_root():
        return Path("/var/lib/modelshelf")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "modelshelf"


def default_store_url() -> str:
    """The embedded default object store: a local directory, so one node needs nothing else."""
    return (default_data_dir() / "store").as_uri()
