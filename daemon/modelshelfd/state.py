"""The server's state as handlers and the HTTP endpoint see it: built once at startup.

Handlers receive this object, never the server: they may use the configuration, the store,
the board, the shelf and the catalog, and read the connections; the server alone accepts,
serves and closes connections and runs the lifecycle.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field
from typing import Any

from modelshelf.store import Store

from .catalog import Catalog
from .config import Config
from .connection import Connection
from .metrics import Metrics
from .pressure import MemoryWatch
from .saved import Pins
from .shelf import Shelf
from .storage import Board
from .warm import Warmer


@dataclass(eq=False)
class ServerState:
    """What handlers and the HTTP endpoint may use, built once by the server at startup."""

    config: Config
    store: Store
    board: Board
    shelf: Shelf
    catalog: Catalog
    started: float = field(default_factory=time.time)
    connections: set[Connection] = field(default_factory=set)
    refused: int = 0  # connections refused at the limit
    memory: MemoryWatch | None = None  # L1's budget under memory pressure
    warmer: Warmer | None = None  # the warm list placed at start
    pins: Pins | None = None  # the versions pinned, saved in cache_dir
    metrics: Metrics = field(default_factory=Metrics)  # histograms and request counters
    # leases held by each uid's connections together (handlers.MAX_LEASES_PER_UID)
    uid_leases: collections.Counter[int] = field(default_factory=collections.Counter)
    # model key -> [the lock its publishes take in turn, how many wait or run]: an entry
    # lives while a publish of that model does
    publishing: dict[str, list[Any]] = field(default_factory=dict)
    sockets_lost: set[str] = field(default_factory=set)  # paths no longer naming our sockets

    def readiness(self) -> dict[str, bool]:
        """Ready to take traffic: the store has answered a listing (names resolve) and the
        warm list is placed. One answer for ``status``, ``/readyz`` and the OIP's ready."""
        listed = self.catalog.listed.is_set()
        warm = self.warmer is None or self.warmer.ready
        sockets = not self.sockets_lost
        return {
            "ready": listed and warm and sockets,
            "catalog_listed": listed,
            "warm": warm,
            "sockets": sockets,
        }
