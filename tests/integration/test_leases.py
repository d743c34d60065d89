"""Two nodes sharing a bucket, single-flight fetches, leases, eviction under a small budget,
leases released by a client's death, and the client's per-process cache."""

from __future__ import annotations

import signal
import threading
import time

import numpy as np

import modelshelf
from modelshelf.admin import AdminConnection
from modelshelf.store import Store
from modelshelfd.tiers import cost

from .conftest import Images, Shelf, wait_for


def test_two_nodes_share_one_bucket(shelf: Shelf, images: Images, s3) -> None:
    url = s3.bucket()
    a = shelf.make("a", store=url, env=s3.env)
    b = shelf.make("b", store=url, env=s3.env, ref_poll_seconds=1.0)
    assert a.prefix != b.prefix
    import subprocess
    import sys

    subprocess.run(
        [sys.executable, "-m", "modelshelf.cli", "publish", "--admin-socket", a.admin_socket,
         "ns/m", str(images.path("logreg"))],
        check=True, capture_output=True,
    )  # fmt: skip
    client_b = b.client()
    old = client_b.model("ns/m")
    assert client_b.model("ns/m") is old  # held: no round trip while the board stands still
    X = images.X
    expected_old = old.predict_proba(X)
    s3.store(url).publish("ns", "m", images.bytes("logreg_c"))  # a third party publishes v2
    published = time.monotonic()
    new = wait_for(lambda: (m := client_b.model("ns/m")) is not old and m, timeout=5)
    assert time.monotonic() - published < 2.0  # one poll period (1 s here) plus the fetch
    np.testing.assert_array_equal(
        new.predict_proba(X), modelshelf.load(images.path("logreg_c")).predict_proba(X)
    )
    np.testing.assert_array_equal(old.predict_proba(X), expected_old)  # old handle still valid
    assert a.client().model("ns/m@2").image.size == new.image.size


def test_single_flight(shelf: Shelf, images: Images, s3) -> None:
    url = s3.bucket()
    s3.store(url).publish("ns", "blob", images.bytes("blob48m"))
    daemon = shelf.make(store=url, env=s3.env, range_bytes="4M", fetch_parallelism=2)
    n = 8
    clients = [daemon.client() for _ in range(n)]
    barrier = threading.Barrier(n)
    models: list[modelshelf.Model] = []  # referenced: each keeps its mapping and lease

    def acquire(c) -> None:
        barrier.wait()
        models.append(c.model("ns/blob"))

    threads = [threading.Thread(target=acquire, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [m.image.size for m in models] == [len(images.bytes("blob48m"))] * n
    stats = daemon.stats()
    assert stats["l3_fetches"] == 1
    assert stats["fetch_waits"] + stats.get("l1_hits", 0) == n - 1
    assert stats["fetch_waits"] >= 1  # the requests really overlapped the fetch
    assert daemon.admin("status")["leases"] == n


def test_eviction_never_unmaps_a_leased_image(shelf: Shelf, images: Images) -> None:
    store = Store(shelf.store)
    for name in ("a", "b", "c"):
        store.publish("ns", name, images.bytes("blob4m"))  # same bytes, one image
    store.publish("ns", "lr", images.bytes("logreg"))
    store.publish("ns", "r", images.bytes("ridge"))
    store.publish("ns", "p", images.bytes("pipe"))
    size = cost(len(images.bytes("logreg"))) + cost(len(images.bytes("pipe")))
    daemon = shelf.make(l1_bytes=size + 64)  # room for two of the small images
    holder = shelf.start_client(
        daemon.socket,
        """
        m = client.model("ns/lr")
        X = np.random.default_rng(1).uniform(4, 7, (5, 4))
        before = m.predict_proba(X)
        """,
        after="""
        assert not modelshelf.load(m.image.buffer) is m
        sys.exit(0 if np.array_equal(m.predict_proba(X), before) else 3)
        """,
    )
    client = daemon.client()
    client.model("ns/r").predict(images.X)
    client.release("ns/r")  # nothing references it: unmapped, its lease ends
    # its L2 file is written after the reply (its segment busy meanwhile, not a victim)
    wait_for(lambda: daemon.admin("status")["l2_writes"] == 0, what="the L2 writes to end")
    client.model("ns/p")  # first use while L1 is full: served from the page cache
    client.release("ns/p")
    client.model("ns/p")  # second use, admitted: the unleased ridge goes, the logreg stays
    status = daemon.admin("status")
    assert status["l1"]["bytes"] <= size + 64
    rows = {r["models"][0]: r for r in daemon.admin("ls")["models"]}
    assert rows["ns/lr@1"]["tiers"] == ["l1", "l2"] and rows["ns/lr@1"]["leases"] == 1
    assert rows["ns/r@1"]["tiers"] == ["l2"]
    # an explicit evict unlinks the leased image's name; its bytes stay counted
    daemon.admin("evict", model="ns/lr")
    assert daemon.admin("status")["l1"]["retired"] == 1
    held_bytes = daemon.admin("status")["l1"]["bytes"]
    assert held_bytes == size
    assert holder.stdin is not None and holder.stdout is not None
    # the holder keeps predicting from its mapping after the eviction
    holder.stdin.write("\n")
    holder.stdin.flush()
    assert holder.wait(timeout=30) == 0
    wait_for(lambda: daemon.admin("status")["l1"]["retired"] == 0, what="retired segment freed")
    assert daemon.admin("status")["l1"]["bytes"] == cost(len(images.bytes("pipe")))


def test_l1_full_of_leased_images_serves_from_the_page_cache(shelf: Shelf, images: Images) -> None:
    store = Store(shelf.store)
    store.publish("ns", "lr", images.bytes("logreg"))
    store.publish("ns", "r", images.bytes("ridge"))
    daemon = shelf.make(l1_bytes=cost(len(images.bytes("logreg"))) + 16)
    client = daemon.client()
    held = client.model("ns/lr")
    ridge = client.model("ns/r")  # L1 holds only the leased logreg: never overcommitted
    assert client.last_source == "l3"
    np.testing.assert_array_equal(
        ridge.predict(images.X), modelshelf.load(images.path("ridge")).predict(images.X)
    )
    status = daemon.admin("status")
    assert status["l1"]["bytes"] <= status["l1"]["budget"]
    assert status["l2"]["leased_bytes"] == cost(len(images.bytes("ridge")))
    assert daemon.stats()["served_page_cache"] == 1 and daemon.stats()["l1_not_admitted"] == 1
    assert held.predict(images.X).shape == (16,)
    del held
    client.release("ns/lr")  # the logreg's mapping ends: L1 can take the ridge now
    del ridge
    client.release("ns/r")
    assert client.model("ns/r").predict(images.X).shape == (16,)
    assert client.last_source == "l2"  # from the page cache; promoted in the background
    wait_for(
        lambda: daemon.admin("ls")["models"][1]["tiers"] == ["l1", "l2"],
        what="the ridge promoted into shared memory",
    )


def test_sigkill_of_a_client_releases_its_leases(shelf: Shelf, images: Images) -> None:
    Store(shelf.store).publish("ns", "lr", images.bytes("logreg"))
    daemon = shelf.make()
    proc = shelf.start_client(daemon.socket, 'client.model("ns/lr"); client.model("ns/lr@1")')
    assert daemon.admin("status")["leases"] == 2
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    wait_for(lambda: daemon.admin("status")["leases"] == 0, what="leases released")


def test_client_cache_and_release(shelf: Shelf, images: Images) -> None:
    Store(shelf.store).publish("ns", "lr", images.bytes("logreg"))
    daemon = shelf.make()
    client = daemon.client()
    m = client.model("ns/lr")
    assert client.model("ns/lr") is m
    # another model changing costs nothing; ns/lr changing costs one round trip and, for the
    # same image under a new version, the same object comes back
    Store(shelf.store).publish("ns", "other", images.bytes("ridge"))
    daemon.admin("rm", model="ns/other", all=True)  # moves ns/other's counter right away
    assert client.model("ns/lr") is m and client.last_source == "held"
    with AdminConnection(daemon.admin_socket) as admin, open(images.path("logreg"), "rb") as fh:
        assert admin.request({"op": "publish", "model": "ns/lr"}, (fh.fileno(),))["version"] == 2
    assert client.model("ns/lr") is m and client.last_source == "checked"
    assert daemon.admin("status")["leases"] == 1  # "have": no second lease taken
    assert set(client.tensors("ns/lr")) == set(m.tensors)
    assert client.release("ns/lr") is True
    assert daemon.admin("status")["leases"] == 1  # the application still holds the Model
    np.testing.assert_array_equal(m.predict(images.X), m.predict(images.X))  # still mapped
    del m  # the mapping ends with the last reference; the flusher sends the release
    wait_for(lambda: daemon.admin("status")["leases"] == 0, what="lease released")
    assert client.release("ns/lr") is False
