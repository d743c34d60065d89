"""What the daemon reads from the machine: its memory limit (cgroup v1 and v2, nested groups,
"max"), the L1 budget kept below it, and the descriptors L1 may use. The cgroup trees here are
directories laid out as the kernel lays them out; a real cgroup is in the integration tests."""

from __future__ import annotations

import logging
from pathlib import Path

import psutil
import pytest

from modelshelfd import machine

RAM = int(psutil.virtual_memory().total)


def _tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_v2_takes_the_smallest_limit_up_the_tree(tmp_path: Path) -> None:
    proc = tmp_path / "cgroup"
    proc.write_text("0::/kubepods/pod1/ctr\n")
    root = tmp_path / "fs"
    _tree(
        root,
        {
            "cgroup.controllers": "memory cpu\n",
            "kubepods/memory.max": "max\n",
            "kubepods/pod1/memory.max": f"{1 << 30}\n",
            "kubepods/pod1/ctr/memory.max": "max\n",
        },
    )
    assert machine.memory_limit(proc, root) == min(RAM, 1 << 30)


def test_v1_memory_controller_and_no_limit(tmp_path: Path) -> None:
    proc = tmp_path / "cgroup"
    proc.write_text("5:cpu,cpuacct:/x\n4:memory:/svc\n1:name=systemd:/svc\n")
    root = tmp_path / "fs"
    _tree(root, {"memory/memory.limit_in_bytes": "9223372036854771712\n"})
    _tree(root, {"memory/svc/memory.limit_in_bytes": f"{256 << 20}\n"})
    assert machine.memory_limit(proc, root) == min(RAM, 256 << 20)
    (root / "memory/svc/memory.limit_in_bytes").write_text("9223372036854771712\n")
    assert machine.memory_limit(proc, root) == RAM


def test_unreadable_cgroups_mean_ram(tmp_path: Path) -> None:
    assert machine.memory_limit(tmp_path / "absent", tmp_path) == RAM
    proc = tmp_path / "cgroup"
    proc.write_text("0::/../../etc\n")  # a path that leaves the mount is not followed
    assert machine.memory_limit(proc, tmp_path / "fs") == RAM


def test_l1_is_kept_below_the_limit_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "modelshelfd.machine"):
        assert machine.l1_budget(100, 1000) == 100
        assert not caplog.records
        assert machine.l1_budget(4000, 1000) == int(1000 * machine.L1_SHARE)
    assert "l1_bytes is 4000 bytes but this daemon may use 1000 bytes" in caplog.text


def test_segments_get_what_connections_and_the_reserve_leave() -> None:
    assert machine.segment_limit(1 << 20, 1024) == (1 << 20) - 1024 - machine.DESCRIPTOR_RESERVE
    assert machine.segment_limit(96, 1024) == 16


def test_a_store_read_maps_the_image_and_a_buffer_and_stack_per_range_at_once() -> None:
    import resource

    soft = resource.getrlimit(resource.RLIMIT_STACK)[0]
    stack = 8 << 20 if soft in (resource.RLIM_INFINITY, 0) else soft  # a thread's stack
    margin = machine.ADDRESS_SPACE_MARGIN
    assert machine.fetch_address_space(1000, 8, 8 << 20) == 1000 + (1000 + stack) + margin
    # 48 MiB in ranges of 8 MiB, 8 at once: 6 ranges, each its buffer and its thread's stack
    assert machine.fetch_address_space(48 << 20, 8, 8 << 20) == (48 << 20) + 6 * (16 << 20) + margin
    assert machine.fetch_address_space(48 << 20, 2, 8 << 20) == (48 << 20) + 2 * (16 << 20) + margin


def test_address_space_left_is_none_without_a_limit_and_shrinks_with_one() -> None:
    import resource

    if resource.getrlimit(resource.RLIMIT_AS)[0] == resource.RLIM_INFINITY:
        assert machine.address_space_left() is None
    size = psutil.Process().memory_info().vms
    saved = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (size + (1 << 30), saved[1]))
    try:
        left = machine.address_space_left()
    finally:
        resource.setrlimit(resource.RLIMIT_AS, saved)
    assert left is not None and 0 < left <= 1 << 30
