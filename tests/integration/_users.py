"""Real users for tests that need another uid, and Python processes that run as them.

Users are created once with ``useradd`` (system users, no home, no shell) and kept. The
interpreter may live where only root can read (``/root/.pyenv``), so a process imports what it
needs while still root, then drops to the user (groups, gid, uid) before running its script:
from then on it has exactly that user's rights, as an application of theirs would.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

# imported before the privileges go: the standard library may be unreadable afterwards
_PRELUDE = """\
import array, contextlib, json, mmap, os, socket, struct, sys, threading, time
import numpy as np
import modelshelf, modelshelf.admin, modelshelf.client, modelshelf.errors, modelshelf.wire
from modelshelf.client import Client
os.setgroups([])
os.setgid({gid})
os.setuid({uid})
"""


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int

    def popen(self, script: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """``script`` in a fresh Python process running as this user, its stdout a pipe."""
        code = _PRELUDE.format(uid=self.uid, gid=self.gid) + textwrap.dedent(script)
        return subprocess.Popen(
            [sys.executable, "-c", code],
            env=_environment(env),
            cwd="/",
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(self, script: str, env: dict[str, str] | None = None, timeout: float = 60.0) -> str:
        """Run ``script`` as this user; its stdout, stripped. A failure shows its stderr."""
        proc = self.popen(script, env)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(f"process of {self.name} timed out:\n{out}\n{err}") from None
        if proc.returncode != 0:
            raise AssertionError(f"process of {self.name} failed ({proc.returncode}):\n{err}")
        return out.strip()


def _environment(extra: dict[str, str] | None) -> dict[str, str]:
    # no per-user runtime directory and no modelshelf settings unless the test gives them
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MODELSHELF_") and k not in ("XDG_RUNTIME_DIR", "HOME")
    }
    env["HOME"] = "/nonexistent"
    env.update(extra or {})
    return env


def user(name: str) -> User:
    """The system user ``name``, created if missing (other test runs may race to create it:
    useradd's lock is retried)."""
    # the suite runs as root (.ci/run does): a test that needs other users fails, never skips
    assert os.geteuid() == 0, "creating users and running processes as them needs root"
    for _ in range(50):
        try:
            pw = pwd.getpwnam(name)
            return User(name, pw.pw_uid, pw.pw_gid)
        except KeyError:
            pass
        command = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin"]
        subprocess.run([*command, name], capture_output=True, check=False)
        time.sleep(0.1)
    raise AssertionError(f"could not create the user {name}")


def shared_dir(prefix: str) -> Path:
    """A new directory every user may traverse (pytest's tmp_path is root's alone), owned by
    root and writable by root only: a place for sockets other users connect to."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path
