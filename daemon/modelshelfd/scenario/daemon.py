"""The scenario's daemon: a ``modelshelfd`` subprocess started and stopped for one run.

Its own sockets, cache dir and shm prefix in a directory of the run; its environment cleared
of the caller's ``MODELSHELF_*``; its own session (Ctrl-C is the harness's to handle) but a
SIGTERM when the harness dies. The run waits until it answers, asks it for status and stats
over the admin socket, counts its shared memory, and stops it, removing anything left
there. It logs at WARNING to a file, whose end the summary reads.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psutil

LOG_TAIL = 64_000  # characters of the daemon's log kept
_RECORD = re.compile(r"\S+ \S+ (WARNING|ERROR|CRITICAL) ")  # the daemon's log format


def _die_with_parent() -> None:
    # a daemon in its own session escapes Ctrl-C (we stop it ourselves, in order), but must
    # not outlive a harness that was killed
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Daemon:
    """A ``modelshelfd`` subprocess with its own sockets, cache dir and shm prefix."""

    def __init__(
        self, root: Path, store_url: str, l1_bytes: int, l2_bytes: int, *, policy: str = "cost"
    ) -> None:
        self.root = root
        self.socket, self.admin_socket = str(root / "s.sock"), str(root / "admin.sock")
        self.prefix = f"msscn-{uuid.uuid4().hex[:10]}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODELSHELF_")}
        env.update(
            MODELSHELF_SOCKET=self.socket,
            MODELSHELF_ADMIN_SOCKET=self.admin_socket,
            MODELSHELF_STORE=store_url,
            MODELSHELF_CACHE_DIR=str(root / "cache"),
            MODELSHELF_SHM_PREFIX=self.prefix,
            MODELSHELF_L1_BYTES=str(l1_bytes),
            MODELSHELF_L2_BYTES=str(l2_bytes),
            MODELSHELF_LOG_LEVEL="WARNING",
            MODELSHELF_POLICY=policy,
        )
        self.log_path = root / "daemon.log"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "modelshelfd"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        self._admin: Any = None
        self.ps = psutil.Process(self.proc.pid)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.request("ping") is None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"modelshelfd did not start:\n{self.log_tail(3000)}")
            time.sleep(0.05)

    def request(self, op: str) -> dict[str, Any] | None:
        """One admin request on a kept connection; None if the daemon does not answer."""
        from modelshelf.admin import AdminConnection
        from modelshelf.errors import ShelfError

        try:
            if self._admin is None:
                self._admin = AdminConnection(self.admin_socket, timeout=10)
            return self._admin.request({"op": op})
        except (ShelfError, OSError):
            self.close_admin()
            return None

    def close_admin(self) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None

    def shm_bytes(self) -> tuple[int, int, int]:
        """This daemon's shared memory (its memfds, read through /proc/<pid>/fd): memory of its
        image segments (whole pages), their apparent size (what the images hold), and memory
        of its other memfds (the board). A segment open twice (being filled, being written to
        L2) is counted once."""
        pages = apparent = other = 0
        pattern = re.compile(re.escape(self.prefix) + r"-[0-9a-f]{32}")
        seen: set[int] = set()
        fds = Path(f"/proc/{self.proc.pid}/fd")
        with contextlib.suppress(OSError):
            for fd in fds.iterdir():
                with contextlib.suppress(OSError):  # closed while we looked
                    target = os.readlink(fd)
                    if not target.startswith(f"/memfd:{self.prefix}-"):
                        continue
                    st = fd.stat()
                    if st.st_ino in seen:
                        continue
                    seen.add(st.st_ino)
                    label = target.removeprefix("/memfd:").removesuffix(" (deleted)")
                    if pattern.fullmatch(label):
                        pages += st.st_blocks * 512
                        apparent += st.st_size
                    else:
                        other += st.st_blocks * 512
        return pages, apparent, other

    def log_tail(self, chars: int) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""

    def stop(self) -> int:
        """SIGTERM, wait, then remove anything left in /dev/shm (the daemon creates nothing
        there: a count above 0 is a defect); how many files were left."""
        self.close_admin()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        left = [p for p in Path("/dev/shm").glob(f"{self.prefix}-*")]
        for path in left:
            path.unlink(missing_ok=True)
        return len(left)


def log_records(log: str) -> dict[str, Any]:
    """How many records the daemon logged (WARNING and above: its level here; tracebacks
    left out), and the last ones."""
    records = [r for r in log.splitlines() if _RECORD.match(r)]
    return {"records": len(records), "last": records[-20:]}
