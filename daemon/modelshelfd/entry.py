"""What the node knows of one image, by digest: its state and its use (what the policy, the
fetcher and ``ls`` read). Which tiers hold it is the tiers' business (``tiers.py``)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class State(enum.Enum):
    """Where an image is in its life on this node."""

    FETCHING = "fetching"  # being brought onto the node: kept whatever its copies do
    READY = "ready"


@dataclass(eq=False)
class Entry:
    """What the node knows of one image: its state, its use and the names that resolved to it."""

    digest: str
    size: int
    state: State = State.READY
    hits: int = 0
    last_use: float = 0.0
    labels: set[str] = field(default_factory=set)  # "ns/name@version" that resolved here
