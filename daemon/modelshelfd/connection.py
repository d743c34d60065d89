"""One peer connection on either socket: who it is (SO_PEERCRED, and its supplementary
groups from /proc) and the leases it holds.

Leases belong to a connection: when it ends, however it ends, the server releases them.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

from .shelf import Lease


@dataclass(eq=False)
class Connection:
    """One peer connection and the leases it holds."""

    sock: socket.socket
    kind: str  # "client" or "admin"
    pid: int
    uid: int
    gid: int
    groups: frozenset[int] = frozenset()  # supplementary groups, read at accept
    leases: dict[str, list[Lease]] = field(default_factory=dict)  # by digest
    handing: list[Lease] = field(default_factory=list)  # leases going out with the next reply
    lease_count: int = 0  # leases held, all digests: at most MAX_LEASES
    busy: bool = False  # a request of it is being handled
    # an admin connection in the slots kept for status and other read-only ops (beyond the
    # admin limit: a prefetch holding every slot must not make the daemon look dead)
    read_only: bool = False


def peer_groups(pid: int) -> frozenset[int]:
    """The supplementary groups of a connected peer (``Groups:`` in /proc/<pid>/status); empty
    if they cannot be read (the primary gid from SO_PEERCRED still counts)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Groups:"):
                    return frozenset(int(g) for g in line.split()[1:] if g.isdigit())
    except OSError:
        pass
    return frozenset()
