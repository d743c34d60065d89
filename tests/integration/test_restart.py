"""Daemon crashes and restarts: held models keep predicting, the client reconnects by itself,
L1 and L2 are adopted (verified) instead of fetched again, a fetch killed halfway leaves nothing
servable behind, and a corrupted L2 file is discarded and fetched again."""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest

import modelshelf
import modelshelf.client
from modelshelf.errors import DaemonUnavailable
from modelshelf.store import Store

from .conftest import Images, Shelf, wait_for


def test_sigkill_at_rest_then_restart_adopts_without_refetch(shelf: Shelf, images: Images) -> None:
    """Segments end with their daemon; the L2 files it left are adopted, so after a SIGKILL
    every image comes back from local disk, none from the store."""
    store = Store(shelf.store)
    store.publish("ns", "lr", images.bytes("logreg"))
    store.publish("ns", "p", images.bytes("pipe"))
    daemon = shelf.make()
    client = daemon.client()
    model = client.model("ns/lr")
    expected = model.predict_proba(images.X)
    daemon.admin("prefetch", model="ns/p")
    daemon.admin("evict", model="ns/p")  # now only on disk (L2)
    wait_for(lambda: daemon.admin("status")["l2_writes"] == 0, what="the L2 writes to end")
    daemon.kill()  # SIGKILL: no cleanup at all
    # the daemon is gone: held models keep predicting, cached ones come back without it
    np.testing.assert_array_equal(model.predict_proba(images.X), expected)
    assert client.model("ns/lr") is model
    with pytest.raises(DaemonUnavailable, match=daemon.socket):
        client.model("ns/p")
    daemon.start()
    stats = daemon.stats()
    assert stats["adopted_l2"] == 2 and stats["adopted_l1"] == 0  # no systemd: no kept L1
    # the restarted daemon bumped the board: one round trip, a new connection, same object
    assert client.model("ns/lr") is model
    assert client.model("ns/p").predict(images.X).shape == (16,)
    stats = daemon.stats()
    assert stats.get("l3_fetches", 0) == 0
    assert (stats["l1_hits"], stats["l2_hits"]) == (0, 2)


def test_sigkill_mid_fetch_leaves_nothing_servable(shelf: Shelf, images: Images, s3) -> None:
    url = s3.bucket()
    s3.store(url).publish("ns", "blob", images.bytes("blob48m"))
    daemon = shelf.make(store=url, env=s3.env, range_bytes="1M", fetch_parallelism=1)
    client = daemon.client()
    errors: list[BaseException] = []

    def acquire() -> None:
        try:
            client.model("ns/blob")
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=acquire)
    thread.start()
    wait_for(lambda: daemon.admin("status")["inflight_fetches"] == 1, what="fetch started")
    wait_for(lambda: len(daemon.segments()) == 1, what="segment being filled")
    daemon.kill()
    thread.join(timeout=30)
    assert len(errors) == 1 and isinstance(errors[0], DaemonUnavailable)
    daemon.start()
    assert list((daemon.cache_dir / "tmp").iterdir()) == []
    assert list((daemon.cache_dir / "images").iterdir()) == []
    stats = daemon.stats()
    assert stats["adopted_l2"] == 0  # the half-filled segment died with its daemon
    assert daemon.segments() == []
    tensors = client.tensors("ns/blob")
    np.testing.assert_array_equal(
        tensors["w"], modelshelf.load(images.path("blob48m")).tensors["w"]
    )


def test_a_stop_during_an_l2_write_leaves_no_half_file(shelf: Shelf, images: Images) -> None:
    """A cold image is answered before its L2 file is written; a stop right after the reply
    (a deadline of 1 ms: a write still running is cancelled) leaves no temp file, and nothing in
    images/ but the whole image; the next start adopts it verified, or fetches again."""
    info = Store(shelf.store).publish("ns", "blob", images.bytes("blob48m"))
    daemon = shelf.make(shutdown_timeout=0.001)
    expected = modelshelf.load(images.path("blob48m")).tensors["w"]
    np.testing.assert_array_equal(daemon.client().tensors("ns/blob")["w"], expected)
    daemon.stop()
    assert list((daemon.cache_dir / "tmp").iterdir()) == []
    files = list((daemon.cache_dir / "images").iterdir())
    stopped = "L2 write of" in daemon.logs()  # cancelled mid-write, else it ended first
    assert [f.name for f in files] == ([] if stopped else [info.digest])
    assert all(f.read_bytes() == images.bytes("blob48m") for f in files)
    daemon.start()
    assert daemon.stats()["adopted_l2"] == len(files)
    np.testing.assert_array_equal(daemon.client().tensors("ns/blob")["w"], expected)
    assert daemon.stats()["l3_fetches"] == (0 if files else 1)


def test_corrupted_l2_file_is_discarded_and_fetched_again(shelf: Shelf, images: Images) -> None:
    info = Store(shelf.store).publish("ns", "lr", images.bytes("logreg"))
    daemon = shelf.make()
    assert daemon.admin("prefetch", model="ns/lr")["tier"] == "l3"
    daemon.stop()  # graceful: L1 is unlinked, L2 stays
    path = daemon.cache_dir / "images" / info.digest
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))
    daemon.start()
    assert daemon.client().model("ns/lr").predict(images.X).shape == (16,)
    wait_for(lambda: daemon.admin("status")["l2_writes"] == 0, what="the L2 write to end")
    stats = daemon.stats()
    assert (stats["validation_failures"], stats["l3_fetches"]) == (1, 1)
    assert path.read_bytes() == images.bytes("logreg")  # replaced by a verified copy
    assert daemon.admin("ls")["models"][0]["tiers"] == ["l1", "l2"]


def test_corrupted_store_copy_is_never_served(shelf: Shelf, images: Images) -> None:
    info = Store(shelf.store).publish("ns", "lr", images.bytes("logreg"))
    blob = shelf.tmp / "store" / "images" / info.digest
    data = bytearray(blob.read_bytes())
    data[-1] ^= 1
    blob.write_bytes(bytes(data))
    daemon = shelf.make()
    with pytest.raises(modelshelf.ImageError, match="every copy failed validation"):
        daemon.client().model("ns/lr")
    assert daemon.stats()["validation_failures"] == 2
    wait_for(lambda: daemon.segments() == [], what="the failed segments let go")


def test_graceful_restart_and_no_daemon(shelf: Shelf, images: Images) -> None:
    Store(shelf.store).publish("ns", "lr", images.bytes("logreg"))
    daemon = shelf.make()
    client = daemon.client()
    model = client.model("ns/lr")
    daemon.stop()  # SIGTERM: the board's generation bumped, segments let go
    assert client.model("ns/lr") is model  # board moved, no daemon: the held copy answers
    assert model.predict(images.X).shape == (16,)
    daemon.start()
    assert client.model("ns/lr") is model  # reconnected by itself; same digest, same object
    assert daemon.admin("status")["leases"] == 1
    assert daemon.stats()["l2_hits"] == 1
    with pytest.raises(DaemonUnavailable, match="MODELSHELF_SOCKET"):
        modelshelf.client.Client(str(shelf.tmp / "absent.sock")).model("ns/lr")


def test_a_second_daemon_of_the_same_instance_refuses_to_start(
    shelf: Shelf, images: Images
) -> None:
    import subprocess
    import sys

    Store(shelf.store).publish("ns", "lr", images.bytes("logreg"))
    daemon = shelf.make()
    client = daemon.client()
    model = client.model("ns/lr")
    # the L2 write after the reply maps the segment (a descriptor of its own) until it ends
    wait_for(lambda: daemon.admin("status")["l2_writes"] == 0, what="the L2 write to end")
    segments = daemon.segments()
    proc = subprocess.run(
        [sys.executable, "-m", "modelshelfd", "--config", str(daemon.config_path)],
        env=daemon.env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 1 and "another modelshelfd uses the cache directory" in proc.stderr
    assert daemon.segments() == segments  # nothing adopted, unlinked or bumped under it
    assert client.model("ns/lr") is model
    assert daemon.admin("ping")["ok"] is True


def test_a_socket_path_naming_a_file_is_never_deleted(shelf: Shelf) -> None:
    """A ``socket`` that names an existing regular file stops the daemon at startup; the file
    is left as it was."""
    precious = shelf.tmp / "precious.txt"
    precious.write_text("not a socket\n")
    daemon = shelf.make(socket=str(precious), start=False)
    proc = subprocess.run(
        [sys.executable, "-m", "modelshelfd", "--config", str(daemon.config_path)],
        env=daemon.env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 1 and "exists and is not a socket" in proc.stderr
    assert precious.read_text() == "not a socket\n"


def test_a_cache_dir_holding_user_files_is_refused_and_left_alone(shelf: Shelf) -> None:
    """The daemon deletes strays in its cache directory: pointed at a directory it did not
    create (and that holds files of someone else's), it refuses to start and deletes nothing."""
    home = shelf.tmp / "home"
    for rel in ("notes.txt", "images/photo.jpg", "tmp/draft.txt"):
        (home / rel).parent.mkdir(parents=True, exist_ok=True)
        (home / rel).write_text(f"{rel}\n")
    daemon = shelf.make(cache_dir=str(home), start=False)
    before = sorted(home.rglob("*"))
    proc = subprocess.run(
        [sys.executable, "-m", "modelshelfd", "--config", str(daemon.config_path)],
        env=daemon.env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 1 and "holds files modelshelfd did not create" in proc.stderr
    for rel in ("notes.txt", "images/photo.jpg", "tmp/draft.txt"):
        assert (home / rel).read_text() == f"{rel}\n"
    assert sorted(home.rglob("*")) == before  # no marker, no lock file, nothing


def test_sighup_reloads_what_may_change_and_nothing_else(shelf: Shelf, images: Images) -> None:
    """SIGHUP reads the file again: budgets and the access table change in place; an invalid
    file, or a change of the socket, is logged and nothing is applied."""
    import signal
    import tomllib

    from .conftest import write_config

    Store(shelf.store).publish("ns", "lr", images.bytes("logreg"))
    daemon = shelf.make(l1_bytes="64M", namespaces={"ns": {"uids": [54321]}})
    assert daemon.proc is not None
    values = tomllib.loads(daemon.config_path.read_text())

    def hup(changes: dict, expect: str) -> None:
        write_config(daemon.config_path, {**values, **changes})
        daemon.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: expect in daemon.logs(), what=expect)

    with pytest.raises(modelshelf.AccessDenied):
        daemon.client().model("ns/lr")
    changed = "reloaded: client_held_bytes, l1_bytes, namespaces"  # the first follows l1_bytes
    hup({"l1_bytes": "32M", "namespaces": {"ns": {"uids": [0]}}}, changed)
    assert daemon.admin("status")["l1"]["budget"] == 32 << 20
    assert daemon.client().model("ns/lr").predict(images.X).shape == (16,)  # now allowed
    hup({"l1_bytes": "lots"}, "not reloaded, it is invalid: l1_bytes")
    hup({"socket": str(shelf.tmp / "other.sock")}, "socket change only with a restart")
    assert daemon.admin("status")["l1"]["budget"] == 32 << 20  # still the last good one
    applied = {"l1_bytes": "32M", "namespaces": {"ns": {"uids": [0]}}}
    hup({**applied, "ref_skew_seconds": 30.0}, "reloaded: ref_skew_seconds")  # the feed's too
    assert daemon.proc.poll() is None


def test_after_a_sigkill_a_held_latest_model_learns_the_new_version(
    shelf: Shelf, images: Images
) -> None:
    """A daemon killed without a word never moves its board again: a held "latest" model was
    served from it forever. The client notices its connection ended (the flusher looks every
    second) and asks the daemon now running, which has version 2."""
    store = Store(shelf.store)
    store.publish("ns", "m", images.bytes("logreg"))
    daemon = shelf.make()
    client = daemon.client()
    first = client.model("ns/m")
    daemon.kill()
    daemon.start()
    store.publish("ns", "m", images.bytes("pipe"))
    assert first.metadata.get("name") == "logreg"
    wait_for(  # version 2's image
        lambda: client.model("ns/m").metadata.get("name") == "pipe", what="the held model to be v2"
    )
    del first  # its mapping ends: only version 2's lease stays, on the new connection
    wait_for(lambda: daemon.admin("status")["leases"] == 1, what="one lease")


def _pinned(daemon) -> set[str]:  # type: ignore[no-untyped-def]
    rows = daemon.admin("ls")["models"]
    return {m for row in rows if row["pinned"] for m in row["models"]}


@pytest.mark.parametrize("how", ["stopped", "killed"])
def test_pins_survive_a_restart_until_unpinned(shelf: Shelf, images: Images, how: str) -> None:
    """A pin lasts until unpin, not until the daemon stops (a probe found every pin gone
    after a restart, silently): pinned again before the daemon is ready; a pinned version the
    store no longer has is dropped, said in the log; an unpin is remembered too."""
    store = Store(shelf.store)
    for name, image in (("a", "logreg"), ("b", "logreg_c"), ("b", "ridge"), ("gone", "pipe")):
        store.publish("ns", name, images.bytes(image))
    daemon = shelf.make(log_level="INFO")
    for ref in ("ns/a", "ns/b@1", "ns/gone"):
        daemon.admin("pin", model=ref)
    assert _pinned(daemon) == {"ns/a@1", "ns/b@1", "ns/gone@1"}
    daemon.kill() if how == "killed" else daemon.stop()
    store.remove("ns", "gone")
    daemon.start()
    wait_for(lambda: daemon.admin("status")["ready"], what="ready")
    assert _pinned(daemon) >= {"ns/a@1", "ns/b@1"}
    assert daemon.admin("status")["warm"]["pinned_again"] == 2
    assert "pin of ns/gone@1 dropped" in daemon.logs()
    with pytest.raises(modelshelf.errors.ShelfError, match="is pinned"):
        daemon.admin("evict", model="ns/a")
    daemon.admin("unpin", model="ns/a")
    daemon.stop()
    daemon.start()
    wait_for(lambda: daemon.admin("status")["ready"], what="ready")
    assert _pinned(daemon) == {"ns/b@1"}
    assert (daemon.cache_dir / "pins.json").stat().st_mode & 0o777 == 0o600


def test_an_unpin_of_a_pin_kept_for_the_next_start_is_remembered(
    shelf: Shelf, images: Images
) -> None:
    """A pin not placed at a start (L1 too small now) is kept for the next; its unpin
    answered ok and the next start pinned it again all the same (a second probe)."""
    Store(shelf.store).publish("ns", "big", images.bytes("blob4m"))
    daemon = shelf.make(l1_bytes="16M", log_level="INFO")
    daemon.admin("pin", model="ns/big")
    daemon.stop()
    config = daemon.config_path.read_text()
    daemon.config_path.write_text(config.replace('l1_bytes = "16M"', 'l1_bytes = "2M"'))
    daemon.start()
    wait_for(lambda: daemon.admin("status")["ready"], what="ready")
    assert "ns/big@1 not pinned again (kept for the next start)" in daemon.logs()
    daemon.admin("unpin", model="ns/big")
    daemon.stop()
    daemon.config_path.write_text(config)
    daemon.start()
    wait_for(lambda: daemon.admin("status")["ready"], what="ready")
    assert _pinned(daemon) == set()
    assert daemon.admin("status")["warm"]["pinned_again"] == 0


def _rows(daemon) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    return {r["digest"]: r for r in daemon.admin("ls")["models"]}


def test_what_the_policies_learned_survives_a_restart(shelf: Shelf, images: Images) -> None:
    """A restarted daemon ranked its adopted images on estimates: no hits, a last use at the
    start, reload times guessed from sizes. What the policies learned (measured reload times
    per tier, uses, gaps) and the hit counts are written at the stop and read back before
    the L2 files are adopted; a file it cannot use is said in the log and ignored."""
    store = Store(shelf.store)
    ref = store.publish("ns", "lr", images.bytes("logreg"))
    daemon = shelf.make()
    client = daemon.client()
    for _ in range(3):
        client.model("ns/lr")
        client.release("ns/lr")
    wait_for(lambda: daemon.admin("status")["l2_writes"] == 0, what="the L2 write to end")
    daemon.admin("evict", model="ns/lr")
    client.model("ns/lr")  # from L2 this time: the L1 reload is measured
    client.close()
    wait_for(lambda: _rows(daemon)[ref.digest]["l1_reload_measured"], what="the promotion")
    before = _rows(daemon)[ref.digest]
    assert before["hits"] == 4 and before["l2_reload_measured"]
    daemon.stop()
    daemon.start()
    after = _rows(daemon)[ref.digest]
    assert after["tiers"] == ["l2"] and after["hits"] == 4
    assert after["idle_seconds"] >= before["idle_seconds"]  # the time down counts as idle
    for tier in ("l1", "l2"):
        assert after[f"{tier}_reload_measured"], tier
        assert after[f"{tier}_reload_seconds"] == before[f"{tier}_reload_seconds"], tier
    daemon.stop()
    (daemon.cache_dir / "learned.json").write_text('{"format": 1, "saved_at": "x"}')
    daemon.start()
    assert "is not used: malformed: saved_at must be a number" in daemon.logs()
    after = _rows(daemon)[ref.digest]
    assert after["hits"] == 0 and not after["l1_reload_measured"]


def test_a_smaller_disk_budget_at_a_restart_spares_the_pinned_images_copy(shelf: Shelf) -> None:
    """The L2 budget cut between two runs: the adopted files were evicted down to it before the
    pins were placed again, the pinned image's (least recently used) among them, and the pin
    then fetched it from the store, evicting one more (a probe). Its copy goes last now."""
    import tomllib

    from .conftest import write_config

    store = Store(shelf.store)
    for name in ("c", "x", "y", "z"):
        store.publish("ns", name, modelshelf.compile_tensors({"w": np.full(50_000, 1.0)}))
        store.publish("ns", name, modelshelf.compile_tensors({"w": np.full(50_000, ord(name))}))
    daemon = shelf.make(l2_bytes="4M", log_level="INFO")
    daemon.admin("pin", model="ns/c")
    for name in ("x", "y", "z"):
        daemon.admin("prefetch", model=f"ns/{name}")
    wait_for(lambda: daemon.admin("status")["l2"]["count"] == 4, what="the 4 files on disk")
    daemon.stop()
    values = tomllib.loads(daemon.config_path.read_text())
    write_config(daemon.config_path, {**values, "l2_bytes": "900K"})  # 2 of 4 fit
    daemon.start()
    wait_for(lambda: daemon.admin("status")["ready"], what="ready")
    assert _pinned(daemon) == {"ns/c@2"}
    stats = daemon.stats()
    assert stats["l3_fetches"] == 0, stats  # placed again from its own file, not the store
    assert stats["l2_evictions"] == 2 and daemon.admin("status")["l2"]["count"] == 2
