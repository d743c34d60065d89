"""``modelshelf rm`` and ``modelshelf gc`` as the installed console script, where no daemon is
needed: a whole-model ``rm`` refused before anything is asked of the daemon, ``gc`` straight on
a store, and the ages ``gc`` accepts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import modelshelf
from modelshelf.store import Store

# the code under test (PYTHONPATH), not the console script installed from another checkout
SCRIPT = [sys.executable, "-m", "modelshelf.cli"]


def run(
    *args: str | Path, admin_socket: str = "/nonexistent/admin.sock"
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MODELSHELF_ADMIN_SOCKET": admin_socket}
    return subprocess.run(
        [*SCRIPT, *map(str, args)], capture_output=True, text=True, timeout=120, env=env,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_rm_of_a_whole_model_needs_yes_when_not_interactive() -> None:
    proc = run("rm", "ns/m")  # no daemon: refused before any connection is tried
    assert proc.returncode == 2
    assert "ns/m names every version of the model" in proc.stderr
    assert "--yes to remove them all" in proc.stderr
    tried = run("rm", "ns/m", "--yes")  # with --yes it goes on, and finds no daemon
    assert tried.returncode == 6 and "no modelshelf daemon answers" in tried.stderr
    assert run("rm", "ns/m@3").returncode == 6  # one version: no confirmation needed


def test_gc_on_a_store(tmp_path: Path) -> None:
    store = Store((tmp_path / "s").as_uri())
    store.publish("ns", "m", modelshelf.compile_tensors({"w": np.arange(10.0)}))
    stale = tmp_path / "s" / "images" / f"{'a' * 64}#1"
    stale.write_bytes(b"x" * 1000)
    then = time.time() - 7200
    os.utime(stale, (then, then))
    dry = json.loads(run("gc", "--store", store.url, "--dry-run", "--json").stdout)
    assert (dry["count"], dry["bytes"], dry["dry_run"]) == (1, 1000, True) and stale.exists()
    assert run("gc", "--store", store.url, "--older-than", "3h").stdout.startswith(
        "removed 0 staging objects"
    )
    out = run("gc", "--store", store.url, "--older-than", "90m").stdout
    assert out.startswith("removed 1 staging objects, 1000 B freed") and not stale.exists()
    assert "lifecycle rule" not in out  # a note for buckets only
    assert store.list_refs() == {"ns/m": [1]}


@pytest.mark.parametrize("age", ["-1", "1w", "nan", "inf", "", "h"])
def test_gc_refuses_a_malformed_age(age: str) -> None:
    proc = run("gc", "--older-than", age, "--store", "file:///nonexistent")
    assert proc.returncode == 2 and "expected an age like 90s" in proc.stderr


def test_publish_to_a_store_needs_none_of_the_daemons_server_packages(tmp_path: Path) -> None:
    """issue 12, point 7: the `store` extra (obstore) is enough to publish; the daemon's server
    packages are made unimportable in the publishing process."""
    import subprocess
    import sys

    import numpy as np

    import modelshelf

    image = tmp_path / "w.msi"
    image.write_bytes(modelshelf.compile_tensors({"w": np.arange(4.0)}))
    store = (tmp_path / "store").as_uri()
    script = (
        "import sys\n"
        "for name in ('aiohttp', 'posix_ipc', 'psutil', 'prometheus_client', 'modelshelfd'):\n"
        "    sys.modules[name] = None  # import fails as if not installed\n"
        "from modelshelf.cli import main\n"
        f"sys.exit(main(['publish', 'ns/w', {str(image)!r}, '--store', {store!r}]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "published ns/w@1" in done.stdout


def test_models_in_a_store_lists_the_others_when_one_ref_is_malformed(tmp_path: Path) -> None:
    """One malformed ref made `models --store` fail whole: nothing listed."""
    url = (tmp_path / "s").as_uri()
    store = Store(url)
    image = modelshelf.compile_tensors({"w": np.zeros(4)})
    for name in ("a", "b", "c"):
        store.publish("ns", name, image)
    ref = tmp_path / "s" / "refs" / "ns" / "b" / f"{1:020d}"
    assert ref.is_file()
    ref.write_text("{not json")
    listed = run("--json", "models", "--store", url)
    assert listed.returncode == 0 and listed.stderr == ""
    rows = {row["model"]: row for row in json.loads(listed.stdout)}
    assert set(rows) == {"ns/a", "ns/b", "ns/c"}
    assert rows["ns/b"]["digest"] is None and rows["ns/b"]["error"] == "store_unavailable"
    assert rows["ns/a"]["digest"] == rows["ns/c"]["digest"] is not None
    text = run("models", "--store", url)
    assert text.returncode == 0 and "ns/a" in text.stdout and "ns/c" in text.stdout
    assert "ns/b@1: the ref in the store is malformed" in text.stderr
