"""The ``modelshelf`` command's comforts against a real daemon (issue 12, point 5): ``models``
through the daemon's catalog, publishing unchanged bytes, JSON output and errors, exit
statuses, and sizes and durations in units."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import Any

from modelshelf.cli._output import size
from modelshelf.store import Store

from .conftest import Daemon, Images, Shelf


def cli(daemon: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelshelf.cli", *args],
        capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL,
        env={
            "MODELSHELF_ADMIN_SOCKET": daemon.admin_socket,
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": os.environ.get("PYTHONPATH", ""),  # the code under test
        },
    )  # fmt: skip


def as_json(proc: subprocess.CompletedProcess[str]) -> Any:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def test_models_through_the_daemon(shelf: Shelf, images: Images) -> None:
    store = Store(shelf.store)
    store.publish("acme", "churn", images.bytes("logreg"))
    store.publish("acme", "churn", images.bytes("pipe"))
    store.publish("acme", "fraud", images.bytes("ridge"))
    store.publish("other", "x", images.bytes("ridge"))
    daemon = shelf.make()
    rows = as_json(cli(daemon, "--json", "models"))
    assert [r["model"] for r in rows] == ["acme/churn", "acme/fraud", "other/x"]
    churn = rows[0]
    latest = store.ref("acme", "churn", 2)
    assert (churn["versions"], churn["latest"], churn["digest"]) == (2, 2, latest.digest)
    assert (churn["size"], churn["published"]) == (latest.size, latest.published)
    # the same rows as straight from the store
    assert as_json(cli(daemon, "models", "--store", shelf.store, "--json")) == rows
    text = cli(daemon, "models", "acme/*")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].split()[:3] == ["MODEL", "LATEST", "VERSIONS"] and len(lines) == 3
    assert lines[1].split()[:3] == ["acme/churn", "@2", "2"] and "KiB" in lines[1]
    assert as_json(cli(daemon, "models", "nothing/*", "--json")) == []


def test_publish_through_the_daemon_skips_unchanged_bytes(shelf: Shelf, images: Images) -> None:
    daemon = shelf.make()
    path = str(images.path("logreg"))
    first = as_json(cli(daemon, "publish", "team/iris", path, "--json"))
    assert (first["version"], first["unchanged"]) == (1, False)
    assert first["size"] == len(images.bytes("logreg"))
    again = cli(daemon, "publish", "team/iris", path)
    assert again.returncode == 0 and again.stdout.startswith("unchanged: team/iris@1")
    forced = as_json(cli(daemon, "--json", "publish", "team/iris", path, "--force"))
    assert (forced["version"], forced["unchanged"]) == (2, False)
    assert Store(shelf.store).versions("team", "iris") == [1, 2]
    # a pickle compiled twice is the same image (created: the file's time): unchanged too
    pickle = str(images.dir / "pipe.joblib")
    assert as_json(cli(daemon, "publish", "team/pipe", pickle, "--json"))["version"] == 1
    assert as_json(cli(daemon, "publish", "team/pipe", pickle, "--json"))["unchanged"] is True


def test_json_errors_and_exit_statuses(shelf: Shelf, images: Images) -> None:
    Store(shelf.store).publish("ns", "m", images.bytes("ridge"))
    daemon = shelf.make()
    for args in (["--json", "pin", "ns/absent"], ["pin", "ns/absent", "--json"]):
        proc = cli(daemon, *args)
        error = json.loads(proc.stdout)["error"]
        assert proc.returncode == 3 and error["code"] == "not_found"
        assert error["type"] == "ModelNotFound" and error["exit_status"] == 3
    text = cli(daemon, "evict", "ns/m@7")
    assert text.returncode == 3 and text.stderr.startswith("modelshelf evict: error: ")
    assert as_json(cli(daemon, "--json", "pin", "ns/m"))["model"] == "ns/m"
    assert as_json(cli(daemon, "unpin", "--json", "ns/m"))["version"] == 1


def test_human_output_in_units(shelf: Shelf, images: Images) -> None:
    Store(shelf.store).publish("ns", "m", images.bytes("ridge"))
    daemon = shelf.make()
    assert cli(daemon, "prefetch", "ns/m").returncode == 0
    status = cli(daemon, "status").stdout
    first = status.splitlines()[0]
    assert " up " in first and any(first.split(" up ")[1].split()[1] == u for u in ("ms", "s"))
    assert "KiB" in status and "MiB" in status  # L1 usage and budget
    shown = size(len(images.bytes("ridge")))  # 776 B
    ls = cli(daemon, "ls").stdout.splitlines()
    assert ls[1].split()[0] == "ns/m@1" and f"  {shown}  " in ls[1]
    assert re.search(r"  \d+(\.\d)? [mu]?s ago  ", ls[1]), ls[1]
    # the cost policy's view: the priority in the top tier and both reload times, measured
    assert ls[0].split()[-3:] == ["PRIORITY", "RELOAD", "L1/L2"], ls[0]
    weighed = re.search(r"  (\S+) l1  ~\d+ [mu]?s/\d+ [mu]?s$", ls[1])
    assert weighed and float(weighed[1]) > 0, ls[1]  # into L1 from the store: ~, not measured
    stats = cli(daemon, "stats").stdout
    fetched = next(line for line in stats.splitlines() if line.startswith("bytes_fetched"))
    assert fetched.endswith(f" {shown}")
    # the counters that moved, as documented; 40-odd zeros were listed
    assert not any(line.split()[-1] == "0" for line in stats.splitlines()[:-2]), stats
    assert "other counters at 0; --json lists every counter" in stats
    # `modelshelf evict` counts as the budget's evictions do (they stayed 0)
    for tier in ("l1", "l2"):
        assert "evicted=True" in cli(daemon, "evict", "ns/m", "--tier", tier).stdout
    counters = as_json(cli(daemon, "stats", "--json"))["counters"]
    assert counters["l1_evictions"] == 1 == counters["l2_evictions"]


def test_publish_through_the_daemon_reports_its_upload(
    shelf: Shelf, images: Images, tmp_path
) -> None:
    """With a progress bar, the daemon sends how much it has uploaded before its reply; the
    file is streamed from the descriptor sent (a large image, so that there are chunks)."""
    import numpy as np

    import modelshelf

    path = tmp_path / "big.msi"
    path.write_bytes(modelshelf.compile_tensors({"w": np.arange(3_000_000, dtype=np.float64)}))
    daemon = shelf.make(l1_bytes=64 << 20)
    proc = cli(daemon, "publish", "acme/big", str(path), "--progress")
    assert proc.returncode == 0, proc.stderr
    assert "published acme/big@1" in proc.stdout
    total = size(path.stat().st_size)
    assert re.search(r"acme/big: 100%", proc.stderr) and total.split()[0] in proc.stderr
    client = daemon.client()
    assert np.array_equal(client.tensors("acme/big")["w"], np.arange(3_000_000, dtype=np.float64))
    # without the bar (JSON), no progress frames and the same reply
    again = as_json(cli(daemon, "publish", "acme/big", str(path), "--json", "--force"))
    assert again["version"] == 2 and again["size"] == path.stat().st_size


def test_a_corrupt_image_published_through_the_daemon_names_the_file(
    shelf: Shelf, images: Images
) -> None:
    """The daemon checks the descriptor it is sent: its refusal named no file."""
    daemon = shelf.make()
    bad = shelf.tmp / "bad.msi"
    data = bytearray(images.bytes("logreg"))
    data[-1] ^= 0xFF  # the last array's bytes: the checksum no longer matches
    bad.write_bytes(bytes(data))
    result = cli(daemon, "publish", "ns/bad", str(bad))
    assert result.returncode == 8, result.stderr
    assert result.stderr.startswith(f"modelshelf publish: error: {bad}: image checksum")
