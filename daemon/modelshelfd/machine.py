"""What the machine gives the daemon: the memory it may use and the descriptors it may open.

Read once at start. The memory limit is the smallest of the daemon's cgroup limits (v2
``memory.max``, v1 ``memory.limit_in_bytes``, from its own cgroup up to the root of the
mount, so a container sees its own limit) and the machine's RAM. L1 segments are memory
charged to that cgroup: a budget above it would not fail with an error but with the kernel's
OOM killer, so the effective L1 budget is kept below it.
"""

from __future__ import annotations

import logging
import resource
from pathlib import Path

import psutil

log = logging.getLogger("modelshelfd.machine")

CGROUP_ROOT = Path("/sys/fs/cgroup")
L1_SHARE = 0.75  # of the memory limit at most, for L1: the daemon and its clients need the rest
_NO_LIMIT = 1 << 62  # v1 reports "no limit" as a huge page-rounded number


def memory_limit(proc_cgroup: Path = Path("/proc/self/cgroup"), root: Path = CGROUP_ROOT) -> int:
    """Bytes of memory this process may use: min(RAM, every cgroup limit above it)."""
    limit = int(psutil.virtual_memory().total)
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return limit
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":  # v2
            mount, name = (root / "unified", "memory.max")
            if not (mount / "cgroup.controllers").exists():
                mount = root
        elif "memory" in controllers.split(","):  # v1
            mount, name = root / "memory", "memory.limit_in_bytes"
        else:
            continue
        limit = min(limit, _walk_up(mount, path, name))
    return limit


def _walk_up(mount: Path, path: str, name: str) -> int:
    """The smallest ``name`` from ``mount/path`` up to ``mount`` (a nested cgroup's own limit
    may be unset while its parent's is not)."""
    smallest = _NO_LIMIT
    group = (mount / path.lstrip("/")).resolve()
    while group == mount or mount in group.parents:
        try:
            text = (group / name).read_text().strip()
        except OSError:
            text = "max"
        if text.isdigit():
            smallest = min(smallest, int(text))
        if group == mount:
            break
        group = group.parent
    return smallest


def l1_budget(configured: int, limit: int) -> int:
    """The L1 budget the daemon uses: the configured one, kept below ``L1_SHARE`` of the
    memory limit (with a warning, since the operator asked for more)."""
    cap = int(limit * L1_SHARE)
    if configured > cap:
        log.warning(
            "l1_bytes is %d bytes but this daemon may use %d bytes of memory (its cgroup limit "
            "or RAM): L1 is limited to %d bytes (%d%%), since segments above the limit would "
            "end in the OOM killer; raise the memory limit or lower l1_bytes",
            configured, limit, cap, int(L1_SHARE * 100),
        )  # fmt: skip
        return cap
    return configured


def raise_descriptor_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard one (every L1 segment is a descriptor);
    returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (OSError, ValueError):
            pass
    return soft


DESCRIPTOR_RESERVE = 64  # listeners, logs, the store's sockets, fetches in flight, L2 leases


def segment_limit(descriptors: int, max_connections: int) -> int:
    """How many L1 segments (one descriptor each) the daemon keeps: what the descriptor limit
    leaves after the connections and a reserve, and at least 16. A limit too low for both is
    said at start, where it can be fixed, not at the first EMFILE."""
    room = descriptors - DESCRIPTOR_RESERVE - max_connections
    if room < 16:
        log.warning(
            "the descriptor limit (%d) leaves little room for L1 after %d connections: L1 keeps at "
            "most 16 images and connections may be refused; raise LimitNOFILE (ulimit -n) or "
            "lower max_connections",
            descriptors, max_connections,
        )  # fmt: skip
        return 16
    return room
