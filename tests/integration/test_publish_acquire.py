"""Publish (to a store directly, and through the admin socket) then acquire from other
processes; versions, @latest, the tier path L3 -> L2 -> L1."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import modelshelf
from modelshelf.errors import ModelNotFound
from modelshelf.store import Store

from .conftest import Images, Shelf, run_client, wait_for

PREDICT = """
m = client.model(sys.argv[1] if len(sys.argv) > 1 else MODEL)
X = np.array(XS)
result = {"proba": m.predict_proba(X).tolist(), "pred": m.predict(X).tolist(),
          "writeable": bool(next(iter(m.tensors.values())).flags.writeable)}
"""


def _predict_in_process(socket: str, model: str, X: np.ndarray) -> dict:
    body = f"MODEL = {model!r}\nXS = {X.tolist()!r}\n" + PREDICT
    return run_client(socket, body)


def test_direct_publish_then_clients_in_other_processes(shelf: Shelf, images: Images) -> None:
    info = Store(shelf.store).publish("acme", "churn", images.bytes("pipe"))
    assert info.version == 1
    daemon = shelf.make()
    expected = modelshelf.load(images.path("pipe"))
    for _ in range(2):
        got = _predict_in_process(daemon.socket, "acme/churn", images.X)
        np.testing.assert_array_equal(got["proba"], expected.predict_proba(images.X))
        np.testing.assert_array_equal(got["pred"], expected.predict(images.X))
        assert got["writeable"] is False
    stats = daemon.stats()
    assert stats["l3_fetches"] == 1 and stats["l1_hits"] == 1


def test_publish_through_admin_socket_with_the_cli(shelf: Shelf, images: Images) -> None:
    daemon = shelf.make()
    cli = [sys.executable, "-m", "modelshelf.cli", "publish", "--admin-socket", daemon.admin_socket]
    out = subprocess.run(
        [*cli, "team/iris", str(images.path("logreg"))], capture_output=True, text=True, check=True
    )
    assert "team/iris@1" in out.stdout
    # a pickle is compiled locally first, then published the same way
    out = subprocess.run(
        [*cli, "team/iris", str(images.dir / "pipe.joblib")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "team/iris@2" in out.stdout
    got = _predict_in_process(daemon.socket, "team/iris@1", images.X)
    np.testing.assert_array_equal(
        got["proba"], modelshelf.load(images.path("logreg")).predict_proba(images.X)
    )
    got = _predict_in_process(daemon.socket, "team/iris", images.X)
    np.testing.assert_array_equal(
        got["proba"], modelshelf.load(images.path("pipe")).predict_proba(images.X)
    )


def test_cli_publish_rejects_a_file_that_is_not_an_image(shelf: Shelf, images: Images) -> None:
    daemon = shelf.make()
    bad = images.dir / "bad.msi"
    bad.write_bytes(images.bytes("logreg")[:-8] + b"\0" * 8)  # checksum no longer matches
    proc = subprocess.run(
        [sys.executable, "-m", "modelshelf.cli", "publish", "--admin-socket", daemon.admin_socket,
         "team/bad", str(bad)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 8 and "checksum" in proc.stderr  # ImageError.exit_status
    assert Store(shelf.store).versions("team", "bad") == []


def test_versions_in_order_and_latest(shelf: Shelf, images: Images) -> None:
    store = Store(shelf.store)
    assert store.publish("ns", "m", images.bytes("logreg")).version == 1
    assert store.publish("ns", "m", images.bytes("logreg_c")).version == 2
    daemon = shelf.make()
    client = daemon.client()
    latest, v1 = client.model("ns/m"), client.model("ns/m@1")
    assert client.model("ns/m@latest") is latest
    X = images.X
    np.testing.assert_array_equal(
        latest.predict_proba(X), modelshelf.load(images.path("logreg_c")).predict_proba(X)
    )
    np.testing.assert_array_equal(
        v1.predict_proba(X), modelshelf.load(images.path("logreg")).predict_proba(X)
    )
    assert store.versions("ns", "m") == [1, 2]


def test_tier_path_l3_l2_l1(shelf: Shelf, images: Images) -> None:
    Store(shelf.store).publish("ns", "ridge", images.bytes("ridge"))
    daemon = shelf.make()
    assert daemon.admin("prefetch", model="ns/ridge")["tier"] == "l3"
    assert daemon.admin("prefetch", model="ns/ridge")["tier"] == "l1"
    assert (daemon.cache_dir / "images").iterdir().__next__().stat().st_size == len(
        images.bytes("ridge")
    )
    assert daemon.admin("evict", model="ns/ridge")["evicted"] is True
    wait_for(lambda: daemon.segments() == [], what="the segment's descriptor closed")
    assert daemon.admin("prefetch", model="ns/ridge")["tier"] == "l2"
    rows = daemon.admin("ls")["models"]
    assert [(r["models"], r["tiers"]) for r in rows] == [(["ns/ridge@1"], ["l1", "l2"])]
    stats = daemon.stats()
    # one store read; prefetches place without a request: no hits counted (operations.md)
    assert (stats["l3_fetches"], stats["l2_hits"], stats["l1_hits"]) == (1, 0, 0)


def test_s3_store(shelf: Shelf, images: Images, s3) -> None:
    url = s3.bucket()
    s3.store(url).publish("ns", "pipe", images.bytes("pipe"))
    daemon = shelf.make(store=url, env=s3.env)
    got = _predict_in_process(daemon.socket, "ns/pipe", images.X)
    np.testing.assert_array_equal(
        got["proba"], modelshelf.load(images.path("pipe")).predict_proba(images.X)
    )


def test_large_image_is_fetched_in_parallel_ranges(shelf: Shelf, images: Images, s3) -> None:
    url = s3.bucket()
    s3.store(url).publish("ns", "blob", images.bytes("blob4m"))
    daemon = shelf.make(store=url, env=s3.env, range_bytes="512K", fetch_parallelism=4)
    tensors = daemon.client().tensors("ns/blob")
    expected = modelshelf.load(images.path("blob4m")).tensors
    np.testing.assert_array_equal(tensors["w"], expected["w"])
    assert daemon.stats()["bytes_fetched"] == len(images.bytes("blob4m"))


def test_a_removed_version_is_never_served_again_nor_reused(shelf: Shelf, images: Images) -> None:
    """``rm ns/m@2``: the daemon stops serving it, a client holding it finds out at its next
    call (the generation moved), and the next publish is @3, never a new @2 (issue 9,
    point 17). A removal made elsewhere is seen at the daemon's next poll."""
    store = Store(shelf.store)
    store.publish("ns", "m", images.bytes("logreg"))
    store.publish("ns", "m", images.bytes("logreg_c"))
    daemon = shelf.make(ref_poll_seconds=0.2)
    # the catalog learns ns/m's versions from its feed after the start, and that moves the
    # model's counter once (it must: a version removed meanwhile would be news): wait for it,
    # or a client holding @2 from before checks once more (it did on a starved CI machine)
    wait_for(
        lambda: daemon.admin("names", versions=True)["versions"].get("ns/m") == [1, 2],
        what="the catalog to list ns/m's two versions",
    )
    client = daemon.client()
    held = client.model("ns/m@2")
    assert client.model("ns/m@2") is held and client.last_source == "held"
    assert daemon.admin("rm", model="ns/m@2")["removed"] == [2]
    with pytest.raises(ModelNotFound):
        client.model("ns/m@2")
    assert client.held()["models"] == 0  # dropped, not kept for later
    with pytest.raises(ModelNotFound):
        daemon.client().model("ns/m@2")  # a process that never held it
    assert held.predict(images.X).shape == (16,)  # a mapping in use stays valid
    assert store.publish("ns", "m", images.bytes("logreg_c")).version == 3
    client.model("ns/m@3")
    store.remove("ns", "m", 3)  # by another node: this daemon learns it from its poll

    def gone() -> bool:
        try:
            client.model("ns/m@3")
        except ModelNotFound:
            return True
        return False

    wait_for(gone, what="ns/m@3 no longer served")
    np.testing.assert_array_equal(
        client.model("ns/m").predict_proba(images.X),
        modelshelf.load(images.path("logreg")).predict_proba(images.X),
    )


def test_versions_are_never_reused_on_s3(images: Images, s3) -> None:
    store = s3.store(s3.bucket())
    assert [store.publish("ns", "m", images.bytes("logreg")).version for _ in "ab"] == [1, 2]
    assert store.remove("ns", "m") == [1, 2]
    assert store.publish("ns", "m", images.bytes("logreg")).version == 3
    assert store.list_refs() == {"ns/m": [3]}
