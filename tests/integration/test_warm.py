"""Bulk prefetch from the CLI (names, patterns over the catalog, stdin) and the warm list a
daemon places at start before it says it is ready."""

from __future__ import annotations

import json

import numpy as np
import pytest

import modelshelf
from modelshelf.store import Store

from .conftest import Shelf, wait_for
from .test_admin import cli


def _publish(shelf: Shelf, names: list[str]) -> None:
    store = Store(shelf.store)
    for i, name in enumerate(names):
        ns, model = name.split("/")
        store.publish(ns, model, modelshelf.compile_tensors({"w": np.full(300, float(i))}))


def test_prefetch_takes_names_patterns_and_stdin(shelf: Shelf) -> None:
    _publish(shelf, [f"acme/m{i}" for i in range(6)] + ["other/x", "other/y"])
    daemon = shelf.make()
    out = cli(daemon, "prefetch", "acme/*", "other/x", "--json").stdout.splitlines()
    rows = [json.loads(line) for line in out]
    assert rows[-1] == {
        "summary": {
            "models": 7, "placed": 7, "fetched_from_store": 7, "failed": 0, "unmatched_patterns": 0,
            "on_node": 7,
        }
    }  # fmt: skip
    assert sorted(r["model"] for r in rows[:-1]) == [*[f"acme/m{i}" for i in range(6)], "other/x"]
    assert all(r["ok"] and r["tier"] == "l3" and "l1" in r["tiers"] for r in rows[:-1])
    # names on stdin (blank lines skipped, each name once); two are on the node already
    piped = cli(daemon, "prefetch", "-", "other/y", stdin="acme/m0\nacme/m1\n\nother/y\n")
    assert "prefetched 3 of 3 models (1 from the store" in piped.stdout
    # patterns and # comments on stdin, as in a warm list kept in a file
    listed = cli(daemon, "prefetch", "-", stdin="# the acme models\nacme/m[45]\nother/*\n")
    assert "prefetched 4 of 4 models" in listed.stdout, listed
    empty = cli(daemon, "prefetch", "-", stdin="\n# nothing\n", check=False)
    assert empty.returncode == 3 and "nothing to prefetch: no names on stdin" in empty.stderr
    bad = cli(daemon, "prefetch", "acme/m0", "nope/zzz", "--parallel", "2", check=False)
    assert bad.returncode == 3 and "nope/zzz" in bad.stderr and "[not_found]" in bad.stderr
    assert "prefetched 1 of 2 models" in bad.stdout
    none = cli(daemon, "prefetch", "zzz/*", check=False)
    assert none.returncode == 3 and "matches no model" in none.stderr


def test_a_prefetch_larger_than_the_tiers_says_so_and_exits_busy(shelf: Shelf) -> None:
    """12 models of 400 KB into L1 1 MiB and L2 2 MiB: each was placed, later ones evicted
    earlier ones, and the prefetch said '12 of 12' and exited 0 (a probe): it now says how
    many are still on the node and exits busy (5)."""
    store = Store(shelf.store)
    for i in range(12):
        store.publish("big", f"m{i}", modelshelf.compile_tensors({"w": np.full(50_000, float(i))}))
    daemon = shelf.make(l1_bytes="1M", l2_bytes="2M")
    out = cli(daemon, "prefetch", "big/*", "--parallel", "2", check=False)
    assert out.returncode == 5, out
    on_node = len(daemon.admin("ls")["models"])
    assert f"only {on_node} of the 12 models placed are still on this node" in out.stderr, out
    summary = json.loads(
        cli(daemon, "prefetch", "big/*", "--json", check=False).stdout.splitlines()[-1]
    )["summary"]
    assert summary["placed"] == 12 and summary["on_node"] < 12


def test_a_warm_list_is_placed_before_the_daemon_is_ready(shelf: Shelf) -> None:
    _publish(shelf, [f"acme/m{i}" for i in range(5)] + ["other/x", "other/y"])
    daemon = shelf.make(warm=["acme/*", "other/y", "gone/*", "other/missing"])
    wait_for(lambda: daemon.admin("status")["ready"], what="the warm list placed")
    status = daemon.admin("status")
    assert status["warm"]["models"] == 7 and status["warm"]["placed"] == 6
    assert status["warm"]["failed"] == 1 and daemon.stats()["warm_failures"] == 1
    assert status["l1"]["count"] == 6
    logs = daemon.logs()
    assert "no model in the catalog matches 'gone/*'" in logs and "other/missing not placed" in logs
    assert "warm: 6 of 7 models placed (1 failed)" in logs
    # the log says "listening" at start and "ready" once the warm list is placed, in order
    # (it said "ready" before the catalog was even listed); status's text says so too
    logs = wait_for(lambda: "ready: " in daemon.logs() and daemon.logs(), what="ready logged")
    assert logs.index("listening: pid") < logs.index("warm: 6 of 7") < logs.index("ready: ")
    shown = cli(daemon, "status").stdout
    assert "ready        yes (warm list: 6 of 7 models placed, 1 failed" in shown, shown
    client = daemon.client()
    assert client.tensors("acme/m3")["w"][0] == 3.0
    assert client.last_source == "l1"  # placed before anyone asked


def test_readyz_waits_for_the_warm_list(shelf: Shelf) -> None:
    """/readyz answers 200, saying what it checked, once the store has been listed and the warm
    list placed (503 before)."""
    import urllib.error
    import urllib.request

    from .test_admin import _free_port

    _publish(shelf, [f"acme/m{i}" for i in range(3)])
    port = _free_port()
    daemon = shelf.make(http=f"127.0.0.1:{port}", warm=["acme/*"])

    def ready() -> dict:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as exc:
            assert exc.code == 503
            return {}

    body = wait_for(ready, what="/readyz 200")
    assert body == {"ready": True, "catalog_listed": True, "warm": True, "sockets": True}
    assert daemon.admin("status")["warm"]["placed"] == 3


def test_status_is_not_ready_before_the_store_was_listed(shelf: Shelf) -> None:
    """With no warm list, status said ready while the store had never answered (every first
    acquire refused), and /readyz said 503: one readiness now (a probe)."""
    import urllib.error
    import urllib.request

    from .test_admin import _free_port

    port = _free_port()
    daemon = shelf.make(
        store="s3://nowhere/models",
        env={"AWS_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_ACCESS_KEY_ID": "x",
             "AWS_SECRET_ACCESS_KEY": "x", "AWS_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true"},
        http=f"127.0.0.1:{port}",
    )  # fmt: skip
    assert daemon.admin("status")["ready"] is False
    assert "ready        no: starting (the catalog is being listed)" in cli(daemon, "status").stdout
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10)
    assert refused.value.code == 503
    refused.value.close()  # the error holds the response open


def test_names_come_in_pages_however_many_match(shelf: Shelf) -> None:
    """6,000 models are more names than one reply holds (64 KiB): the ``names`` and ``models``
    ops page by bytes, and a glob over all of them prefetches from every page."""
    from pathlib import Path
    from urllib.parse import urlparse

    from modelshelf.store import ref_path

    store = Store(shelf.store)
    image = modelshelf.compile_tensors({"w": np.zeros(4)})
    body = json.dumps({"digest": store.put_image(image), "size": len(image)}).encode()
    root = Path(urlparse(shelf.store).path)
    names = [f"many/model-with-a-long-name-{i:05d}" for i in range(6000)]
    for name in names:  # refs written straight, the way the store lays them out
        path = root / ref_path(*name.split("/"), 1)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    daemon = shelf.make()
    wait_for(lambda: daemon.admin("names", pattern="many/*")["total"] == 6000, what="listing")
    listed, offset, pages = [], 0, 0
    while offset is not None:
        reply = daemon.admin("names", pattern="many/*", offset=offset, versions=True)
        listed += reply["names"]
        assert set(reply["versions"]) == set(reply["names"])
        offset, pages = reply["next"], pages + 1
    assert listed == names and pages > 1
    out = cli(daemon, "prefetch", "many/*", "--json").stdout.splitlines()
    assert json.loads(out[-1])["summary"]["models"] == 6000
    # and `models`, whose rows are longer still (digest, size, date)
    first = daemon.admin("models", pattern="many/*")
    assert 0 < len(first["models"]) < 500 and first["next"] == len(first["models"])
    rows = json.loads(cli(daemon, "models", "many/*", "--json").stdout)
    rows = rows["models"] if isinstance(rows, dict) else rows
    assert [r["model"] for r in rows] == names
    assert "internal" not in daemon.logs()


def test_a_warm_list_larger_than_the_tiers_says_so(shelf: Shelf) -> None:
    """Every model placed, and 'ready', but later placements evicted earlier ones: half the
    list was not on the node, and nothing said so (a second probe)."""
    import numpy as np

    store = Store(shelf.store)
    for i in range(40):
        store.publish("big", f"m{i}", modelshelf.compile_tensors({"w": np.full(16384, float(i))}))
    daemon = shelf.make(warm=["big/*"], l1_bytes="512K", l2_bytes="1M")
    wait_for(lambda: daemon.admin("status")["ready"], what="the warm list placed")
    warm = daemon.admin("status")["warm"]
    assert warm["placed"] == 40 and warm["resident"] < 40
    assert f"only {warm['resident']} of the 40 images placed are still on the node" in (
        daemon.logs()
    )
