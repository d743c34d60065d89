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
from dataclasses import dataclass
from pathlib import Path

import psutil

log = logging.getLogger("modelshelfd.machine")

CGROUP_ROOT = Path("/sys/fs/cgroup")
L1_SHARE = 0.75  # of the memory limit at most, for L1: the daemon and its clients need the rest
_NO_LIMIT = 1 << 62  # v1 reports "no limit" as a huge page-rounded number


def memory_limit(proc_cgroup: Path = Path("/proc/self/cgroup"), root: Path = CGROUP_ROOT) -> int:
    """Bytes of memory this process may use: min(RAM, every cgroup limit above it)."""
    limit = int(psutil.virtual_memory().total)
    for group in _memory_groups(proc_cgroup, root):
        limit = min(limit, _walk_up(group.mount, group.path, group.limit_file))
    return limit


@dataclass(frozen=True)
class _Group:
    mount: Path
    path: str
    v2: bool

    @property
    def limit_file(self) -> str:
        return "memory.max" if self.v2 else "memory.limit_in_bytes"

    @property
    def dir(self) -> Path:
        return self.mount / self.path.lstrip("/")


def _memory_groups(proc_cgroup: Path, root: Path) -> list[_Group]:
    """The daemon's memory cgroups (v1 memory controller, v2 unified), from /proc/self/cgroup."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return []
    groups = []
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":  # v2
            mount = root / "unified"
            if not (mount / "cgroup.controllers").exists():
                mount = root
            groups.append(_Group(mount, path, v2=True))
        elif "memory" in controllers.split(","):  # v1
            groups.append(_Group(root / "memory", path, v2=False))
    return groups


@dataclass(frozen=True)
class MemoryReading:
    """How pressed the daemon's memory is: ``used`` bytes that cannot be reclaimed (its
    cgroup's usage without the file cache, else the machine's total less what is available)
    of ``limit``; ``stall`` the share of the last 10 s some task waited for memory (PSI
    ``some avg10``, percent; 0 where the kernel does not say)."""

    limit: int
    used: int
    stall: float = 0.0


def read_memory(
    proc_cgroup: Path = Path("/proc/self/cgroup"), root: Path = CGROUP_ROOT
) -> MemoryReading:
    """The reading now: the tightest of the machine and the daemon's own memory cgroup."""
    vm = psutil.virtual_memory()
    limit, used = int(vm.total), int(vm.total - vm.available)
    stall = _psi(Path("/proc/pressure/memory"))
    for group in _memory_groups(proc_cgroup, root):
        group_limit = _walk_up(group.mount, group.path, group.limit_file)
        if group_limit >= limit:
            continue  # no limit of its own: the machine's figures hold
        usage = _number(group.dir / ("memory.current" if group.v2 else "memory.usage_in_bytes"))
        stat = _stat(group.dir / "memory.stat")
        prefix = "" if group.v2 else "total_"
        cache = stat.get(f"{prefix}active_file", 0) + stat.get(f"{prefix}inactive_file", 0)
        limit, used = group_limit, max(0, usage - cache)
        if group.v2:
            stall = max(stall, _psi(group.dir / "memory.pressure"))
    return MemoryReading(limit, used, stall)


def _number(path: Path) -> int:
    try:
        text = path.read_text().strip()
    except OSError:
        return 0
    return int(text) if text.isdigit() else 0


def _stat(path: Path) -> dict[str, int]:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {}
    out = {}
    for line in lines:
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            out[key] = int(value)
    return out


def _psi(path: Path) -> float:
    """``some avg10`` of a PSI file, in percent; 0.0 if absent or unreadable."""
    try:
        first = path.read_text().splitlines()[0]
    except (OSError, IndexError):
        return 0.0
    for field in first.split()[1:]:
        key, _, value = field.partition("=")
        if key == "avg10":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 0.0


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


def address_space_left() -> int | None:
    """Bytes the daemon may still map under its address-space limit (``RLIMIT_AS``: ``ulimit
    -v``, systemd's ``LimitAS=``): the limit less its virtual size now; None without a limit.
    Under one, an allocation the object store's client (Rust) cannot make aborts the process
    instead of raising: the fetcher asks first (``fetch_address_space``)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    return int(soft) - int(psutil.Process().memory_info().vms)


ADDRESS_SPACE_MARGIN = 32 << 20  # the reply, a thread or two, Python's own allocations


def fetch_address_space(size: int, parallelism: int, range_bytes: int) -> int:
    """Address space a store read of an image of ``size`` bytes maps at most: the image's
    own mapping, and per range read at once its buffer and its thread's stack."""
    stack = resource.getrlimit(resource.RLIMIT_STACK)[0]
    if stack == resource.RLIM_INFINITY or stack <= 0:
        stack = 8 << 20  # glibc's default for threads when the stack is unlimited
    ranges = min(max(1, parallelism), max(1, -(-size // max(1, range_bytes))))
    return size + ranges * (min(size, range_bytes) + stack) + ADDRESS_SPACE_MARGIN


def warn_address_space_limit() -> None:
    """Say at start that an address-space limit is set: a cgroup memory limit is the bound
    to use (the daemon sizes L1 under it); under ``RLIMIT_AS`` fetches near it are refused."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        log.warning(
            "the daemon runs under an address-space limit of %d bytes (ulimit -v, LimitAS=): "
            "fetches that would come near it are refused 'out of memory', since the object "
            "store's client aborts the process when an allocation fails; a cgroup memory "
            "limit (MemoryMax=, the container's memory limit) is the one to set instead",
            soft,
        )  # fmt: skip


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


DESCRIPTOR_RESERVE = 64  # listeners, logs, the store's sockets, fetches, L2 files being sent


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
