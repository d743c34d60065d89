"""systemd's notify protocol, and its file-descriptor store as the keeper of L1 across restarts.

Under ``Type=notify`` systemd sets ``$NOTIFY_SOCKET``; the daemon sends it datagrams of
``KEY=VALUE`` lines (sd_notify(3)): ``READY=1`` once its sockets are bound and the warm list
is placed, ``STATUS=`` with the tiers' usage, ``WATCHDOG=1`` every half of
``$WATCHDOG_USEC``, ``STOPPING=1`` when it begins to stop. Without ``$NOTIFY_SOCKET`` every
call does nothing.

L1 segments are sealed memfds: they have no name, and die with the last process holding them.
With ``FileDescriptorStoreMax=`` set, the daemon hands systemd a descriptor of each segment
(``FDSTORE=1``, ``FDNAME=l1-<digest>``) and takes it back when the segment is evicted
(``FDSTOREREMOVE=1``). systemd keeps them while the service restarts (``systemctl restart``,
a crash, an upgrade) and passes them to the next run (``$LISTEN_FDS``, ``$LISTEN_FDNAMES``),
which verifies each (sealed, its length, structure and SHA-256) before adopting it: L1
survives a restart and nothing is copied or fetched again.
"""

from __future__ import annotations

import array
import contextlib
import logging
import os
import re
import socket
from collections.abc import Sequence

log = logging.getLogger("modelshelfd.systemd")

LISTEN_FDS_START = 3
SEGMENT_NAME = re.compile(r"l1-([0-9a-f]{64})")
MAX_DATAGRAM_FDS = 253  # SCM_MAX_FD


def notify(state: str, fds: Sequence[int] = ()) -> bool:
    """Send ``state`` (and ``fds``) to ``$NOTIFY_SOCKET``; False if there is none or it
    failed (logged: systemd's answer to a daemon that stops notifying is its own timeout)."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
            sock.sendmsg([state.encode()], rights)
    except OSError as exc:
        log.warning("systemd notify %r failed: %s", state.split("\n")[0], exc)
        return False
    return True


def watchdog_interval() -> float | None:
    """Seconds between ``WATCHDOG=1`` pings (half of ``$WATCHDOG_USEC``), None if not asked."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if (
        not (usec.isascii() and usec.isdigit())
        or int(usec) == 0
        or (pid and pid != str(os.getpid()))
    ):
        return None
    return int(usec) / 2e6


class Keeper:
    """Keeps L1 segments in systemd's descriptor store (a no-op without ``$NOTIFY_SOCKET``)."""

    def __init__(self) -> None:
        self.enabled = bool(os.environ.get("NOTIFY_SOCKET"))

    def keep(self, digest: str, fd: int) -> None:
        if self.enabled:
            notify(f"FDSTORE=1\nFDNAME=l1-{digest}", [fd])

    def drop(self, digest: str) -> None:
        if self.enabled:
            notify(f"FDSTOREREMOVE=1\nFDNAME=l1-{digest}")


def passed_segments() -> dict[str, int]:
    """The segments systemd passed this run, by digest ({} if none); every other descriptor
    it passed is closed. The ``LISTEN_*`` variables are removed from the environment."""
    if os.environ.get("LISTEN_PID", "") != str(os.getpid()):
        return {}
    count = os.environ.get("LISTEN_FDS", "0")
    names = os.environ.get("LISTEN_FDNAMES", "").split(":")
    for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(key, None)
    n = int(count) if count.isascii() and count.isdigit() else 0
    found: dict[str, int] = {}
    for i in range(n):
        fd = LISTEN_FDS_START + i
        name = names[i] if i < len(names) else ""
        match = SEGMENT_NAME.fullmatch(name)
        try:
            os.set_inheritable(fd, False)
        except OSError:
            continue  # not open after all
        if match is None or match[1] in found:
            with contextlib.suppress(OSError):
                os.close(fd)
            continue
        found[match[1]] = fd
    return found
