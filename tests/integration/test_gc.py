"""Staging objects that publishes killed mid-upload leave in the store (issue 9, point 21): a
real publisher process killed with SIGKILL while it writes, then the cleanup: by the next
publish of the same image, and by ``modelshelf gc`` through the daemon, on a store directly,
and on S3 (moto on loopback)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from modelshelf.store import STAGING_GRACE, Store, sha256

from .conftest import Daemon, Images, Shelf, wait_for

HOUR = 3600.0


def cli(*args: str, daemon: Daemon | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ}
    if daemon is not None:
        env["MODELSHELF_ADMIN_SOCKET"] = daemon.admin_socket
    return subprocess.run(
        [sys.executable, "-m", "modelshelf.cli", *args],
        capture_output=True, text=True, env=env, timeout=120, check=True,
    )  # fmt: skip


def kill_publish_midway(store_dir: Path, image: Path) -> Path:
    """Start a real publisher of ``image`` and SIGKILL it once its upload has begun; return
    the staging file it leaves."""
    script = (
        "import sys\nfrom modelshelf.store import Store\n"
        "Store(sys.argv[1]).publish('ns', 'big', open(sys.argv[2], 'rb').read())\n"
    )
    for _ in range(5):  # the kill must land during the write: retried if the write won
        proc = subprocess.Popen([sys.executable, "-c", script, store_dir.as_uri(), str(image)])
        deadline = time.monotonic() + 60
        staged: list[Path] = []
        while not staged and proc.poll() is None and time.monotonic() < deadline:
            if (store_dir / "images").is_dir():
                staged = [p for p in (store_dir / "images").iterdir() if "#" in p.name]
            time.sleep(0.0005)
        if staged:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        if staged and proc.returncode == -signal.SIGKILL:
            return staged[0]
        for p in (store_dir / "images").iterdir():  # the publish completed: start again
            p.unlink()
    raise AssertionError("the publisher finished before it could be killed, 5 times")


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_a_killed_publish_is_cleaned_by_the_next_publish_of_that_image(
    shelf: Shelf, images: Images
) -> None:
    store_dir = shelf.tmp / "store"
    staged = kill_publish_midway(store_dir, images.path("blob48m"))
    digest = sha256(images.bytes("blob48m"))
    assert staged.name == f"{digest}#1" and not (store_dir / "images" / digest).exists()
    store = Store(store_dir.as_uri())
    assert [s.path for s in store.staged()] == [f"images/{digest}#1"]
    assert store.list_refs() == {}  # nothing was published
    # a staging file written moments ago may be a live publisher's: left to gc
    store.publish("ns", "big", images.bytes("blob48m"))
    assert staged.exists()
    _age(staged, STAGING_GRACE + 60)  # untouched for longer: nobody is writing it
    other = store_dir / "images" / f"{'0' * 64}#1"  # another image's: not this publish's
    other.write_bytes(b"x")
    _age(other, HOUR)
    assert store.publish("ns", "big", images.bytes("blob48m")).version == 2
    assert not staged.exists() and other.exists()
    assert (store_dir / "images" / digest).read_bytes() == images.bytes("blob48m")


def test_gc_through_the_daemon_and_on_a_store(shelf: Shelf, images: Images) -> None:
    store_dir = shelf.tmp / "store"
    staged = kill_publish_midway(store_dir, images.path("blob48m"))
    size = staged.stat().st_size
    Store(shelf.store).publish("ns", "lr", images.bytes("logreg"))
    fresh = store_dir / "refs" / "ns" / "lr" / "00000000000000000009#1"  # a publish now
    fresh.write_bytes(b"{}")
    daemon = shelf.make(log_level="INFO")
    young = cli("gc", daemon=daemon).stdout  # default: untouched for an hour
    assert young.startswith("removed 0 staging objects") and staged.exists()
    _age(staged, 2 * HOUR)
    dry = json.loads(cli("gc", "--dry-run", "--json", daemon=daemon).stdout)
    assert (dry["count"], dry["bytes"], dry["dry_run"]) == (1, size, True)
    assert dry["objects"][0]["path"] == f"images/{staged.name}" and staged.exists()
    # the audit record of a dry run says so (it read as the deletion a real gc logs)
    audited = [line for line in daemon.logs().splitlines() if "modelshelfd.audit: gc" in line]
    assert "gc --dry-run by uid" in audited[-1] and "ok, count 1" in audited[-1]
    assert not any("gc by uid" in line and "count 1" in line for line in audited)
    out = cli("gc", daemon=daemon).stdout
    assert out.startswith("removed 1 staging objects") and "freed" in out
    assert f"images/{staged.name}" in out and not staged.exists()
    assert fresh.exists()
    assert "modelshelfd.audit: gc by uid" in daemon.logs() and "ok, count 1" in daemon.logs()
    out = cli("gc", "--older-than", "0", "--store", shelf.store).stdout  # straight to a store
    assert out.startswith("removed 1 staging objects") and not fresh.exists()
    assert Store(shelf.store).list_refs() == {"ns/lr": [1]}  # refs and images untouched
    assert daemon.client().model("ns/lr").predict(images.X).shape == (16,)


def test_gc_touches_nothing_outside_the_stores_trees(shelf: Shelf, images: Images) -> None:
    """A file:// store's gc walked its whole directory: files named like staging objects
    elsewhere were deleted, and pointed at the parent directory by a typo it deleted the
    operator's files there and wrote a snapshot into it."""
    home = shelf.tmp / "home"
    (home / "photos").mkdir(parents=True)
    store_url = (home / "store").as_uri()
    Store(store_url).publish("ns", "lr", images.bytes("logreg"))
    precious = [home / "photos" / "holiday#1", home / "notes#2", home / "store" / "notes#3"]
    for path in precious:
        path.write_text("precious\n")
        _age(path, 2 * 24 * HOUR)
    refused = subprocess.run(
        [sys.executable, "-m", "modelshelf.cli", "gc", "--store", home.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert refused.returncode != 0 and "is not a modelshelf store" in refused.stderr
    out = cli("gc", "--older-than", "0", "--store", store_url).stdout
    assert out.startswith("removed 0 staging objects"), out
    assert all(path.read_text() == "precious\n" for path in precious)
    assert not (home / "events").exists()


def test_gc_on_s3(images: Images, s3) -> None:
    """A bucket holds staging objects only when copied from a file store (``aws s3 sync``);
    gc finds and deletes them there too, and nothing else."""
    url = s3.bucket()
    store = s3.store(url)
    info = store.publish("ns", "lr", images.bytes("logreg"))
    import obstore

    obstore.put(store._store, f"images/{info.digest}#1", b"partial")
    obstore.put(store._store, "versions/ns/lr/00000000000000000002#3", b"{}")
    assert store.staged(HOUR) == []  # just written
    assert {s.path for s in store.staged()} == {
        f"images/{info.digest}#1",
        "versions/ns/lr/00000000000000000002#3",
    }
    env = {**os.environ, **s3.env}
    proc = subprocess.run(
        [sys.executable, "-m", "modelshelf.cli", "gc", "--older-than", "0s", "--store", url],
        capture_output=True, text=True, env=env, timeout=120, check=True,
    )  # fmt: skip
    assert proc.stdout.startswith("removed 2 staging objects, 9 B freed")
    assert "lifecycle rule" in proc.stdout
    assert store.staged() == []
    assert store.list_refs() == {"ns/lr": [1]}
    assert store.get_image(info.digest, info.size) == images.bytes("logreg")


def test_gc_compacts_the_change_feed(shelf: Shelf, images: Images) -> None:
    """``gc`` writes a snapshot of every ref, then removes the events older than
    ``--event-retention``; a daemon started afterwards reads the snapshot (issue 14)."""
    from modelshelf import feed

    old = Store(shelf.store, clock=lambda: time.time() - 2 * HOUR)  # events two hours old
    old.publish("ns", "a", images.bytes("logreg"))
    old.publish("ns", "gone", images.bytes("ridge"))
    old.remove("ns", "gone")
    Store(shelf.store).publish("ns", "a", images.bytes("logreg_c"))  # now
    daemon = shelf.make(ref_poll_seconds=0.2)
    dry = json.loads(cli("gc", "--dry-run", "--json", daemon=daemon).stdout)
    assert dry["feed"]["events_removed"] == 3 and dry["feed"]["snapshot"] == ""
    out = cli("gc", daemon=daemon).stdout
    assert "change feed: removed 3 events older than 3600 s" in out, out
    assert "snapshot of 1 models written" in out
    store = Store(shelf.store)
    keys = store.keys(feed.PREFIX)
    assert len([k for k in keys if feed.is_event(k)]) == 1 and len(feed.snapshots(keys)) == 1
    reply = json.loads(cli("gc", "--json", "--store", shelf.store).stdout)  # straight to it
    assert reply["feed"]["snapshots_removed"] == 0 and reply["feed"]["models"] == 1
    later = shelf.make("b", ref_poll_seconds=0.2)
    wait_for(  # the daemon answers before its first read of the catalog is logged
        lambda: "catalog read whole (snapshot): 1 models" in later.logs(), what="catalog read"
    )
    assert later.client().model("ns/a").predict(images.X).shape == (16,)
    assert later.stats()["full_listings"] == 0
    refused = subprocess.run(
        [sys.executable, "-m", "modelshelf.cli", "gc", "--event-retention", "5m", "--store",
         shelf.store],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert refused.returncode == 2 and "at least 10m" in refused.stderr
