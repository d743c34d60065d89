"""The change feed with real daemons on one S3 bucket (moto on loopback), issue 14: publishers
racing, removals, a publisher whose clock is 30 s behind, refs written the old way (no event),
a daemon restarted while a compaction runs; each daemon's catalog ends equal to the bucket's
refs (nothing missed, nothing twice), and an idle daemon makes one request per poll."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from modelshelf import feed
from modelshelf.store import Store

from .conftest import S3, Daemon, Images, Shelf, wait_for

POLL = 0.3


def _catalog(daemon: Daemon) -> dict[str, list[int]]:
    return dict(daemon.admin("names", versions=True)["versions"])


def _converged(daemons: list[Daemon], store: Store, timeout: float = 30.0) -> None:
    truth = store.list_refs()
    for daemon in daemons:
        wait_for(lambda d=daemon: _catalog(d) == truth, timeout, f"{daemon.prefix} == {truth}")


def _daemons(shelf: Shelf, s3: S3, url: str, *names: str, **config: Any) -> list[Daemon]:
    values: dict[str, Any] = {"ref_poll_seconds": POLL, "ref_full_list_seconds": 3600.0}
    values.update(config)
    return [shelf.make(name, store=url, env=s3.env, **values) for name in names]


def test_two_daemons_follow_racing_publishers_removals_and_a_late_clock(
    shelf: Shelf, images: Images, s3: S3
) -> None:
    url = s3.bucket()
    seed = s3.store(url)
    seed.publish("ns", "m0", images.bytes("logreg"))
    a, b = _daemons(shelf, s3, url, "a", "b")  # no full listing during the test: the feed only
    # hostile objects in the feed: too large, not JSON; skipped and counted, never fatal
    now_ms = int(time.time() * 1000)
    seed.create(f"events/{now_ms:016d}-{'a' * 16}", b"{" * (feed.MAX_EVENT_BYTES + 1))
    seed.create(f"events/{now_ms:016d}-{'b' * 16}", b"\xff not json")
    blobs = [images.bytes(n) for n in ("logreg", "logreg_c", "ridge", "pipe")]
    published: list[tuple[str, int]] = []
    lock = threading.Lock()

    def publisher(i: int) -> None:
        skew = 30.0 if i == 0 else 0.0  # the first one's clock is 30 s behind
        store = s3.store(url)
        store.clock = lambda: time.time() - skew
        for j in range(8):
            info = store.publish("ns", f"m{j % 3}", blobs[(i + j) % 4])
            with lock:
                published.append((info.key, info.version))

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(publisher, range(4)))
    assert len(published) == len(set(published)) == 32
    _converged([a, b], seed)
    assert sum(map(len, _catalog(a).values())) == 33  # every version, each once
    # removals, one by a remover whose clock is behind: seen as well
    behind = s3.store(url)
    behind.clock = lambda: time.time() - 30
    assert behind.remove("ns", "m1", 3) == [3]
    seed.remove("ns", "m2")
    _converged([a, b], seed)
    assert "ns/m2" not in _catalog(a) and 3 not in _catalog(b)["ns/m1"]
    # clients see it: latest, and a removed version no longer served
    client = b.client()
    assert client.model("ns/m0").predict(images.X).shape[0] == 16
    assert b.admin("prefetch", model="ns/m0")["version"] == max(seed.versions("ns", "m0"))
    stats = a.stats()
    assert stats["feed_malformed"] == 2 and b.stats()["feed_malformed"] == 2  # once each
    # the feed found it all: one full listing at start (one more only after a failed poll)
    assert stats["full_listings"] == 1 or stats["store_errors"] > 0, stats


def test_refs_written_the_old_way_are_found_by_the_full_listing(
    shelf: Shelf, images: Images, s3: S3
) -> None:
    url = s3.bucket()
    store = s3.store(url)
    store.publish("ns", "new", images.bytes("logreg"))
    [daemon] = _daemons(shelf, s3, url, "a", ref_full_list_seconds=2.0)
    # a publisher from before the change feed: image, claim and ref, no event
    digest = store.put_image(images.bytes("ridge"))
    body = json.dumps({"digest": digest, "size": len(images.bytes("ridge"))}).encode()
    store.create("versions/ns/old/00000000000000000001", body)
    store.create("refs/ns/old/00000000000000000001", body)
    _converged([daemon], store, timeout=15)
    assert daemon.client().model("ns/old").predict(images.X).shape == (16,)
    store.delete("refs/ns/old/00000000000000000001")  # and an old `rm`
    _converged([daemon], store, timeout=15)
    assert daemon.stats()["full_listings"] >= 2


def test_a_daemon_restarted_during_a_compaction_sees_a_consistent_catalog(
    shelf: Shelf, images: Images, s3: S3
) -> None:
    url = s3.bucket()
    old = s3.store(url)
    old.clock = lambda: time.time() - 7200  # two hours ago: compacted
    for i in range(12):
        old.publish("ns", f"m{i}", images.bytes("logreg"))
    old.remove("ns", "m0")
    feed.compact(s3.store(url), retention=3600)  # a previous snapshot, then more events
    for i in range(12, 20):
        old.publish("ns", f"m{i}", images.bytes("ridge"))
    old.remove("ns", "m12")
    now = s3.store(url)
    now.publish("ns", "m1", images.bytes("ridge"))
    [daemon] = _daemons(shelf, s3, url, "a")
    truth = now.list_refs()
    options = {
        "endpoint": s3.endpoint, "allow_http": True, "access_key_id": "testing",
        "secret_access_key": "testing", "region": "us-east-1",
    }  # fmt: skip
    compacting = Store(url, options, max_retries=5, retry_timeout=20.0)  # outlives restarts
    real_delete = compacting.delete

    def slow_delete(path: str) -> None:  # a compaction that takes a while
        time.sleep(0.5)
        real_delete(path)

    compacting.delete = slow_delete  # type: ignore[method-assign]
    done: list[feed.Compaction] = []
    gc = threading.Thread(target=lambda: done.append(feed.compact(compacting, retention=3600)))
    gc.start()
    restarts = 0
    while gc.is_alive() or restarts == 0:
        daemon.kill()
        daemon.start()
        restarts += 1
        first = wait_for(lambda: _catalog(daemon), what="the catalog read")
        assert first == truth, restarts  # its first view is whole and right
    gc.join()
    assert done[0].events_removed == 9 and restarts >= 1  # the first one during the compaction
    daemon.kill()
    daemon.start()
    assert wait_for(lambda: _catalog(daemon), what="the catalog read") == truth
    assert "catalog read whole (snapshot)" in daemon.logs()


@pytest.fixture
def recording(tmp_path: Path) -> Any:
    """Every request the in-process moto server receives, from now on (its recorder)."""
    from moto.moto_api import recorder

    path = tmp_path / "moto-requests.jsonl"
    saved = recorder._location, recorder._user_enabled
    recorder._location, recorder._user_enabled = str(path), False
    path.write_text("")

    class Recording:
        def start(self) -> None:
            path.write_text("")
            recorder._user_enabled = True

        def stop(self) -> list[dict[str, Any]]:
            recorder._user_enabled = False
            return [json.loads(line) for line in path.read_text().splitlines()]

    yield Recording()
    recorder._location, recorder._user_enabled = saved


def test_an_idle_daemon_makes_one_request_per_poll_whatever_the_catalog_size(
    shelf: Shelf, images: Images, s3: S3, recording: Any
) -> None:
    url = s3.bucket()
    store = s3.store(url)
    info = store.publish("ns", "seed", images.bytes("logreg"))
    body = json.dumps({"digest": info.digest, "size": info.size}).encode()
    n = 1500  # more than one page of an S3 listing: a full listing is two requests
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: store.create(f"refs/ns/m{i}/{1:020d}", body), range(n)))
    feed.compact(store, retention=0)  # the snapshot daemons start from
    [daemon] = _daemons(shelf, s3, url, "a", ref_poll_seconds=0.5)
    wait_for(lambda: len(daemon.admin("names")["names"]) == n + 1, what="the catalog read")
    window = 5.0
    recording.start()
    time.sleep(window)
    requests = [r for r in recording.stop() if url.split("/")[2] in r["url"]]
    assert requests, "no poll recorded"
    assert all(r["method"] == "GET" and "start-after=" in r["url"] for r in requests), requests
    assert len(requests) <= window / 0.5 + 2, len(requests)  # one per poll, nothing else
    assert daemon.stats()["full_listings"] == 0  # started from the snapshot
