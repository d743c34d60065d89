"""A ``modelshelfd`` subprocess for the shelf benchmark, and its worker launcher.

Each daemon gets its own sockets, shm prefix and cache dir under the run's temporary directory,
and a ``file://`` store shared with the publisher (the pattern of ``modelshelfd.demo``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from bench._util import run_worker


class Daemon:
    """One ``modelshelfd`` subprocess with its own sockets, shm prefix and cache dir."""

    def __init__(
        self,
        root: Path,
        store: str,
        *,
        l1: str,
        l2: str,
        env: dict[str, str] | None = None,
        profile: Path | None = None,
    ) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.socket, self.admin_socket = str(root / "s.sock"), str(root / "admin.sock")
        self.cache_dir = root / "cache"
        self.prefix = f"msbench-{uuid.uuid4().hex[:8]}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MODELSHELF_")}
        self.env.update(
            MODELSHELF_SOCKET=self.socket,
            MODELSHELF_ADMIN_SOCKET=self.admin_socket,
            MODELSHELF_STORE=store,
            MODELSHELF_CACHE_DIR=str(self.cache_dir),
            MODELSHELF_SHM_PREFIX=self.prefix,
            MODELSHELF_L1_BYTES=l1,
            MODELSHELF_L2_BYTES=l2,
            MODELSHELF_LOG_LEVEL="WARNING",
        )
        self.env.update(env or {})
        # under cProfile, the daemon writes its profile when SIGTERM ends it
        prof = ["-m", "cProfile", "-o", str(profile)] if profile else []
        self.log = open(root / "daemon.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, *prof, "-m", "modelshelfd"],
            env=self.env,
            stdout=self.log,
            stderr=self.log,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                self.admin("ping")
                break
            except Exception:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise
                time.sleep(0.05)

    def admin(self, op: str, **fields: Any) -> dict[str, Any]:
        from modelshelf.admin import AdminConnection

        with AdminConnection(self.admin_socket, timeout=600) as conn:
            return conn.request({"op": op, **fields})

    def stats(self) -> dict[str, int]:
        return dict(self.admin("stats")["counters"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=60)
        self.log.close()
        for seg in Path("/dev/shm").glob(f"{self.prefix}-*"):  # a crashed daemon's leftovers
            seg.unlink(missing_ok=True)


def worker(fn: str, args: Any) -> Any:
    """Run ``bench.shelf_workers.<fn>(json args)`` in a fresh interpreter; its JSON result."""
    return run_worker(f"from bench.shelf_workers import {fn}; {fn}({json.dumps(args)!r})")
