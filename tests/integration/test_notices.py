"""Per-model change notices on a real daemon (issue 14, point 2): a publish of one model sends no
client that holds other models back to the daemon; a publish of a model a client holds reaches
it at its next call."""

from __future__ import annotations

import os

import numpy as np

import modelshelf
from modelshelf.admin import AdminConnection
from modelshelf.board import slot_hash
from modelshelf.store import Store
from modelshelfd.storage import BOARD_SLOTS

from .conftest import Daemon, Images, Shelf, wait_for


def _publish(daemon: Daemon, model: str, image: os.PathLike[str]) -> int:
    """Publish through the daemon's admin socket: it updates its catalog at once."""
    fd = os.open(image, os.O_RDONLY)
    try:
        with AdminConnection(daemon.admin_socket) as admin:
            return int(admin.request({"op": "publish", "model": model}, (fd,))["version"])
    finally:
        os.close(fd)


def _hits(daemon: Daemon) -> int:
    stats = daemon.stats()
    return sum(stats.get(k, 0) for k in ("l1_hits", "l2_hits", "l3_hits"))


def test_a_publish_of_one_model_costs_no_round_trip_for_holders_of_others(
    shelf: Shelf, images: Images
) -> None:
    names = ("ns/x", "ns/y", "ns/z")
    assert len({slot_hash(n) & (BOARD_SLOTS - 1) for n in names}) == 3  # no shared slot
    store = Store(shelf.store)
    store.publish("ns", "x", images.bytes("logreg"))
    store.publish("ns", "y", images.bytes("ridge"))
    store.publish("ns", "z", images.bytes("ridge"))
    daemon = shelf.make(ref_poll_seconds=0.2)
    client = daemon.client()
    x, y, y1 = client.model("ns/x"), client.model("ns/y"), client.model("ns/y@1")
    # ns/y@1 is ns/y: the second lease granted for it is given back (by the flusher)
    wait_for(lambda: daemon.admin("status")["leases"] == 2, what="one lease per mapping")
    # A daemon still reading its catalog lists a name on demand, and that moves the name's
    # counter while it answers: the client read the board before asking, so it asks once more
    # (never a stale copy). Settle that first: every model held without a round trip.
    refs = {"ns/x": x, "ns/y": y, "ns/y@1": y1}

    def settled() -> bool:
        sources = []
        for ref, model in refs.items():
            assert client.model(ref) is model
            sources.append(client.last_source)
        return sources == ["held"] * len(refs)

    wait_for(settled, what="the three models held without a round trip")
    sent, hits = client._ids, _hits(daemon)  # _ids: requests this client has sent

    for i in range(10):  # another publisher, through this daemon and through the store
        generation = daemon.admin("status")["generation"]
        if i % 2:
            _publish(daemon, "ns/z", images.path("logreg_c"))
        else:
            store.publish("ns", "z", images.bytes("logreg"))  # seen at the daemon's next poll
            wait_for(lambda g=generation: daemon.admin("status")["generation"] != g)
        assert daemon.admin("status")["generation"] != generation  # the old board moved
        assert client.model("ns/x") is x and client.last_source == "held"
        assert client.model("ns/y") is y and client.last_source == "held"
        assert client.model("ns/y@1") is y1 and client.last_source == "held"
    assert client._ids == sent  # not one round trip
    assert _hits(daemon) == hits

    assert _publish(daemon, "ns/x", images.path("logreg_c")) == 2
    new = client.model("ns/x")  # the very next call sees it
    assert new is not x and client.last_source in {"l1", "l2", "l3"}
    np.testing.assert_array_equal(
        new.predict_proba(images.X),
        modelshelf.load(images.path("logreg_c")).predict_proba(images.X),
    )
    assert client.model("ns/y") is y and client.last_source == "held"
    assert client._ids == sent + 1

    store.publish("ns", "x", images.bytes("logreg"))  # by another node: seen at the next poll
    expected = modelshelf.load(images.path("logreg")).predict_proba(images.X)
    wait_for(
        lambda: np.array_equal(client.model("ns/x").predict_proba(images.X), expected),
        what="ns/x@3 served",
    )
    assert client.model("ns/y") is y and client.last_source == "held"
