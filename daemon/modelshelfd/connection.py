"""One peer connection on either socket: who it is (SO_PEERCRED) and the leases it holds.

Leases belong to a connection: when it ends, however it ends, the server releases them.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

from .tiers import Copy


@dataclass(eq=False)
class Connection:
    """One peer connection and the leases it holds."""

    sock: socket.socket
    kind: str  # "client" or "admin"
    pid: int
    uid: int
    gid: int
    leases: dict[str, list[Copy]] = field(default_factory=dict)  # digest -> leased copies
    busy: bool = False  # a request of it is being handled
