"""modelshelf.feed: the change feed's events and snapshots on a file:// store and on S3 (moto
on loopback): written create-only after the ref, keys that sort by the writer's clock, bounded
and validated reads, and a compaction that never deletes before its snapshot exists."""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import modelshelf
from modelshelf import feed
from modelshelf.errors import ModelNotFound, StoreError
from modelshelf.store import Store


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def _s3(endpoint: str, **kwargs: Any) -> Store:
    import boto3

    bucket = f"b{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    ).create_bucket(Bucket=bucket)  # fmt: skip
    options = {
        "endpoint": endpoint, "allow_http": True, "access_key_id": "testing",
        "secret_access_key": "testing", "region": "us-east-1",
    }  # fmt: skip
    return Store(f"s3://{bucket}/shelf", options, max_retries=1, retry_timeout=3.0, **kwargs)


@pytest.fixture(params=["file", "s3"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    def make(**kwargs: Any) -> Store:
        if request.param == "file":
            return Store((tmp_path / "s").as_uri(), **kwargs)
        return _s3(request.getfixturevalue("moto_endpoint"), **kwargs)

    return make


@pytest.fixture(scope="module")
def image() -> bytes:
    return modelshelf.compile_tensors({"w": np.arange(10, dtype=np.float64)})


def _events(store: Store) -> list[feed.Event]:
    return [feed.read_event(store, k) for k in store.keys(feed.PREFIX) if feed.is_event(k)]


def test_publish_and_remove_write_events_in_time_order(make_store: Any, image: bytes) -> None:
    store = make_store()
    info = store.publish("ns", "m", image)
    store.publish("ns", "m", image)
    store.remove("ns", "m", 1)
    events = _events(store)  # in key order
    written = [("publish", "ns/m", (1,)), ("publish", "ns/m", (2,)), ("remove", "ns/m", (1,))]
    got = [(e.op, e.model, e.versions) for e in events]
    assert sorted(got) == sorted(written)
    # keys sort by time: events of different milliseconds come in the order they were written;
    # within one millisecond the random id orders them
    for a, b in itertools.pairwise(events):
        assert a.ms <= b.ms
        if a.ms < b.ms:
            assert written.index((a.op, a.model, a.versions)) < written.index(
                (b.op, b.model, b.versions)
            )
    first = events[got.index(written[0])]
    assert abs(first.ms / 1000 - time.time()) < 60
    body = json.loads(store.get_small(first.key, feed.MAX_EVENT_BYTES) or b"")
    assert body["digest"] == info.digest and body["size"] == info.size
    assert body["id"] == first.key.rpartition("-")[2] and body["writer"].startswith("model")
    # keys that sort after an event's: exactly the ones written after it
    assert store.keys(feed.PREFIX, after=events[0].key) == [e.key for e in events[1:]]


def test_a_publisher_clock_behind_writes_keys_in_the_past(make_store: Any, image: bytes) -> None:
    store = make_store(clock=lambda: time.time() - 30)
    store.publish("ns", "late", image)
    [event] = _events(store)
    assert 29 < time.time() - event.ms / 1000 < 40


def test_an_event_key_is_created_once(make_store: Any) -> None:
    store = make_store()
    store.create("events/0000000000000001-00000000000000aa", b"{}")
    with pytest.raises(StoreError, match="exists"):
        store.create("events/0000000000000001-00000000000000aa", b"{}")


def test_removing_many_versions_writes_bounded_events(tmp_path: Path) -> None:
    store = Store((tmp_path / "s").as_uri())
    versions = list(range(1, 600))
    feed.removed(store, "ns", "big", versions)
    events = _events(store)
    assert sorted(v for e in events for v in e.versions) == versions
    assert all(len(e.versions) <= feed.MAX_EVENT_VERSIONS for e in events)
    assert all(len(store.get_small(e.key, 1 << 20) or b"") <= feed.MAX_EVENT_BYTES for e in events)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1]",
        json.dumps({"op": "publish", "namespace": "ns", "name": "m", "versions": [1]}).encode(),
        json.dumps({"op": "remove", "namespace": "NS", "name": "m", "versions": [1]}).encode(),
        json.dumps({"op": "remove", "namespace": "ns", "name": "m", "versions": [0]}).encode(),
        json.dumps({"op": "remove", "namespace": "ns", "name": "m", "versions": [True]}).encode(),
        json.dumps({"op": "drop", "namespace": "ns", "name": "m", "versions": [1]}).encode(),
        json.dumps({"op": "remove", "namespace": "ns", "name": "m", "versions": []}).encode(),
        b"[" * 100_000,
    ],
)
def test_a_malformed_event_is_refused(tmp_path: Path, body: bytes) -> None:
    with pytest.raises(feed.FeedError, match="malformed"):
        feed.decode_event("events/0000000000000001-00000000000000aa", body)


def test_objects_are_bounded_before_they_are_read(tmp_path: Path) -> None:
    store = Store((tmp_path / "s").as_uri())
    key = "events/0000000000000001-00000000000000aa"
    store.create(key, b" " * (feed.MAX_EVENT_BYTES + 1))
    assert store.get_small(key, feed.MAX_EVENT_BYTES) is None
    with pytest.raises(feed.FeedError, match="more than"):
        feed.read_event(store, key)
    with pytest.raises(ModelNotFound):
        feed.read_event(store, "events/0000000000000002-00000000000000aa")
    with pytest.raises(feed.FeedError):
        feed.decode_event("events/oops", b"{}")


def test_a_snapshot_skips_its_malformed_entries(tmp_path: Path) -> None:
    key = "events/snapshot-0000000000000005-0000abcd.json"
    body = {"format": 1, "models": {"ns/a": [2, 1, 2], "NS/b": [1], "ns/c": ["x"], "d": [1]}}
    snapshot, skipped = feed.decode_snapshot(key, json.dumps(body).encode())
    assert snapshot.models == {"ns/a": [1, 2]} and snapshot.cutoff_ms == 5 and skipped == 3
    for bad in (b"{}", b"[]", b'{"format": 1, "models": []}', b"\xff"):
        with pytest.raises(feed.FeedError):
            feed.decode_snapshot(key, bad)


def test_compaction_writes_the_snapshot_before_it_deletes(
    make_store: Any, image: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [time.time() - 7200]
    store = make_store(clock=lambda: now[0])
    store.publish("ns", "a", image)  # two hours ago
    store.publish("ns", "b", image)
    store.remove("ns", "b")
    now[0] = time.time()
    store.publish("ns", "a", image)  # now: kept
    deleted: list[str] = []
    real_delete = store.delete

    def delete(path: str) -> None:
        assert any(feed.snapshot_cutoff(k) for k in store.keys(feed.PREFIX)), "snapshot first"
        deleted.append(path)
        real_delete(path)

    monkeypatch.setattr(store, "delete", delete)
    done = feed.compact(store, retention=3600)
    assert (done.events_removed, done.snapshots_removed, done.models) == (3, 0, 1)
    snapshot, _ = feed.read_snapshot(store, done.snapshot)
    assert snapshot.models == {"ns/a": [1, 2]}  # a full listing, taken after the cutoff
    assert [e.versions for e in _events(store)] == [(2,)]
    # two snapshots are kept: a daemon may be reading the previous one
    for _ in range(3):
        feed.compact(store, retention=3600)
    assert len(feed.snapshots(store.keys(feed.PREFIX))) == feed.KEEP_SNAPSHOTS
    dry = feed.compact(store, retention=0, dry_run=True)
    assert dry.snapshot == "" and len(_events(store)) == 1


def test_events_near_the_cutoff_are_kept_for_the_skew_window(tmp_path: Path, image: bytes) -> None:
    now = [time.time() - 3600 - 100]  # 100 s before the cutoff: inside the overlap
    store = Store((tmp_path / "s").as_uri(), clock=lambda: now[0])
    store.publish("ns", "a", image)
    now[0] = time.time()
    assert feed.compact(store, retention=3600).events_removed == 0


def test_a_gc_host_whose_clock_is_ahead_cuts_by_the_buckets_clock(
    moto_endpoint: str, image: bytes
) -> None:
    """gc on a host two hours ahead of the bucket wrote a snapshot whose cutoff was in
    everyone else's future: every daemon re-read the catalog at each poll, and a publish from
    a host on time (its event before that cutoff) stayed unseen until the full listing. (A
    file:// store's clock is its host's.)"""
    ahead = _s3(moto_endpoint, clock=lambda: time.time() + 7200)
    ahead.publish("ns", "a", image)
    before = time.time()
    done = feed.compact(ahead, retention=3600)
    assert int((before - 3600) * 1000) - 5000 <= done.cutoff_ms
    assert done.cutoff_ms <= int((time.time() - 3600) * 1000) + 5000
    assert feed.compact(ahead, retention=3600, dry_run=True).cutoff_ms > done.cutoff_ms


def test_apply_keeps_a_version_removed_before_its_publish_was_read() -> None:
    def ev(op: str, model: str, *versions: int) -> feed.Event:
        return feed.Event(f"events/{0:016d}-{uuid.uuid4().hex[:16]}", op, model, versions)

    models: dict[str, list[int]] = {"ns/a": [1]}
    remove = ev("remove", "ns/a", 2)
    changed = feed.apply(models, [remove, ev("publish", "ns/a", 2)], {"ns/a": {2}})
    assert models == {"ns/a": [1]} and changed == {"ns/a"}  # @2 may be cached
    changed = feed.apply(models, [ev("publish", "ns/b", 1), ev("publish", "ns/b", 1)], {})
    assert models == {"ns/a": [1], "ns/b": [1]} and changed == {"ns/b"}
    assert feed.apply(models, [ev("remove", "ns/a", 1)], {}) == {"ns/a"}
    assert models == {"ns/b": [1]}
