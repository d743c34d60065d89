"""modelshelfd: the per-node daemon that keeps model images on a shelf.

config     one frozen Config from the TOML file, MODELSHELF_* environment and flags
server     lifecycle (startup, serve, shutdown), the client and admin sockets, connections
handlers   the protocol's ops (docs/protocol.md) and their error codes
aiowire    async framing with descriptors on raw non-blocking sockets
catalog    refs from the object store, cached and polled; the board's generation
shelf      entries, states, leases, byte budgets, single-flight fetches, eviction
policy     the pure, clock-injected eviction and admission (cost-aware; LRU to compare)
tiers      blocking I/O of L1 segments, L2 files and the board (run in threads)
demo       ``python -m modelshelfd.demo``: the shelf end to end on one node
"""

from __future__ import annotations
