"""The admin socket through the ``modelshelf`` CLI: status, ls, stats, prefetch, pin, unpin,
evict, rm; and who may use it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from modelshelf.admin import AdminConnection
from modelshelf.errors import AccessDenied, ModelNotFound, ShelfError
from modelshelf.store import Store
from modelshelfd.tiers import cost

from .conftest import Daemon, Images, Shelf, wait_for


def cli(
    daemon: Daemon, *args: str, check: bool = True, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env_cmd = [sys.executable, "-m", "modelshelf.cli", *args]
    return subprocess.run(
        env_cmd,
        input=stdin,
        capture_output=True,
        text=True,
        check=check,
        env={
            "MODELSHELF_ADMIN_SOCKET": daemon.admin_socket,
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": os.environ.get("PYTHONPATH", ""),  # the code under test, not a copy
        },
    )


def test_cli_commands(shelf: Shelf, images: Images) -> None:
    store = Store(shelf.store)
    store.publish("ns", "lr", images.bytes("logreg"))
    store.publish("ns", "p", images.bytes("pipe"))
    # one image of the two in L1; LRU, so that which one stays does not hang on reload times
    # measured on a busy machine (the cost policy's own tests are in tests/unit/daemon)
    daemon = shelf.make(l1_bytes=cost(len(images.bytes("pipe"))) + 64, policy="lru")
    assert "tier=l3" in cli(daemon, "prefetch", "ns/lr").stdout
    out = cli(daemon, "ls").stdout
    assert out.splitlines()[0].split()[:3] == ["MODEL", "DIGEST", "SIZE"]
    assert "ns/lr@1" in out and "l1+l2" in out
    status = json.loads(cli(daemon, "status", "--json").stdout)
    assert status["l1"]["count"] == 1 and status["store"] == shelf.store
    assert "L1" in cli(daemon, "status").stdout
    # pinned: the budget cannot evict it, so the next image lands on local disk only
    cli(daemon, "pin", "ns/lr")
    assert "tiers=l2" in cli(daemon, "prefetch", "ns/p").stdout.split()  # not a Python list's repr
    assert "pinned; unpin it first" in cli(daemon, "evict", "ns/lr", check=False).stderr
    cli(daemon, "unpin", "ns/lr")
    # a prefetch places, it is no use: the admission rule still waits for p's second use
    assert "tier=l2" in cli(daemon, "prefetch", "ns/p").stdout
    stats = json.loads(cli(daemon, "stats", "--json").stdout)["counters"]
    assert stats["l1_hits"] + stats["l2_hits"] + stats["l3_hits"] + stats["l1_misses"] == 0
    daemon.client().model("ns/p")  # its first use: from the page cache
    daemon.client().model("ns/p")  # its second: LRU lets it into L1, and lr goes

    def tiers() -> dict[str, list[str]]:
        return {r["models"][0]: r["tiers"] for r in json.loads(cli(daemon, "ls", "--json").stdout)}

    wait_for(lambda: tiers() == {"ns/lr@1": ["l2"], "ns/p@1": ["l1", "l2"]}, what="promotion")
    stats = json.loads(cli(daemon, "stats", "--json").stdout)["counters"]
    assert stats["l1_evictions"] == 1 and stats["l3_fetches"] == 2
    # misses per tier: every request not served from L1 missed it; from the store, both (the
    # two requests found p in L2; the prefetches that read the store are no requests)
    assert stats["l1_misses"] == stats["l2_hits"] + stats["l3_hits"] == 2
    assert stats["l2_misses"] == stats["l3_hits"] == 0
    assert stats["l1_bytes_loaded"] == len(images.bytes("pipe"))  # promoted from its L2 file
    assert stats["l1_reload_seconds"] > 0 and stats["l2_reload_seconds"] > 0
    shown = cli(daemon, "stats").stdout
    assert re.search(r"^l2_reload_seconds +\d+ [mu]?s$", shown, re.M), shown
    assert "l3_fetches" in cli(daemon, "stats").stdout
    refused = cli(daemon, "rm", "ns/lr", check=False)  # every version: not without --yes
    assert refused.returncode == 2 and "--yes to remove them all" in refused.stderr
    assert store.versions("ns", "lr") == [1]
    assert "removed=1" in cli(daemon, "rm", "ns/lr", "--yes").stdout
    assert store.versions("ns", "lr") == []
    with pytest.raises(ModelNotFound) as err:
        daemon.client().model("ns/lr")
    assert err.value.code == "not_found"
    gone = cli(daemon, "prefetch", "ns/lr", check=False)  # exit statuses name the failure
    assert gone.returncode == ModelNotFound.exit_status == 3 and "[not_found]" in gone.stderr
    missing = cli(daemon, "status", "--admin-socket", str(shelf.tmp / "nope.sock"), check=False)
    assert missing.returncode == 6 and "nope.sock" in missing.stderr  # DaemonUnavailable


def test_admin_uids(shelf: Shelf) -> None:
    daemon = shelf.make(admin_uids=[54321])
    with pytest.raises(AccessDenied, match="not an admin"):
        AdminConnection(daemon.admin_socket)
    daemon.admin_socket = str(shelf.tmp / "unused")  # teardown needs no admin call


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_http_healthz_and_metrics(shelf: Shelf, images: Images, private_s3) -> None:
    import urllib.error
    import urllib.request

    url = private_s3.bucket()
    private_s3.store(url).publish("ns", "lr", images.bytes("logreg"))
    port = _free_port()
    daemon = shelf.make(store=url, env=private_s3.env, http=f"127.0.0.1:{port}")
    daemon.client().model("ns/lr")  # a request (a prefetch places without one: no miss)
    base = f"http://127.0.0.1:{port}"
    with urllib.request.urlopen(f"{base}/healthz", timeout=10) as r:
        assert r.status == 200 and json.load(r)["ok"] is True
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as r:
        text = r.read().decode()
    assert 'modelshelf_events_total{event="l3_fetches"} 1.0' in text
    # a miss of both tiers, and the seconds the store read took (the fetch histogram's sum)
    assert 'modelshelf_events_total{event="l1_misses"} 1.0' in text
    assert 'modelshelf_events_total{event="l2_misses"} 1.0' in text
    assert 'modelshelf_reload_seconds_total{tier="l1"} 0.0' in text
    store_read = float(text.split('modelshelf_reload_seconds_total{tier="l2"} ')[1].split()[0])
    fetch_sum = float(text.split('modelshelf_fetch_seconds_sum{tier="l3"} ')[1].split()[0])
    assert store_read > 0 and abs(store_read - fetch_sum) < 1e-5
    assert f"modelshelf_l1_bytes {float(cost(len(images.bytes('logreg'))))}" in text
    private_s3.server.stop()
    wait_for(lambda: daemon.admin("status")["store_error"], what="the poller notices")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{base}/healthz", timeout=10)
    assert err.value.code == 503
    err.value.close()


def test_cli_publish_straight_to_a_store(shelf: Shelf, images: Images) -> None:
    daemon = shelf.make()
    publish = ("publish", "ns/direct", str(images.path("ridge")), "--store", shelf.store)
    assert "published ns/direct@1" in cli(daemon, *publish).stdout
    # the same bytes again: nothing new (issue 12, point 5), unless forced
    assert cli(daemon, *publish).stdout.startswith("unchanged: ns/direct@1 already holds")
    assert "published ns/direct@2" in cli(daemon, *publish, "--force").stdout
    assert Store(shelf.store).versions("ns", "direct") == [1, 2]
    # the daemon shares that store: it serves what was published around it
    assert daemon.client().model("ns/direct").predict(images.X).shape == (16,)
    bad = cli(daemon, "publish", "ns/direct@3", str(images.path("ridge")), check=False)
    assert bad.returncode == 2 and "versions are assigned by publish" in bad.stderr


def test_ls_of_a_large_shelf_comes_in_pages(shelf: Shelf) -> None:
    """Hundreds of images do not fit in one 64 KiB message: ``ls`` pages, the CLI follows."""
    import numpy as np

    import modelshelf

    store = Store(shelf.store)
    n = 300
    names = [f"ns/{'m' * 50}{i:04d}" for i in range(n)]
    for i, name in enumerate(names):
        image = modelshelf.compile_tensors({"w": np.full(4, float(i))})
        store.publish("ns", name.split("/")[1], image)
    daemon = shelf.make()
    with AdminConnection(daemon.admin_socket) as admin:
        for name in names:
            admin.request({"op": "prefetch", "model": name})
        first = admin.request({"op": "ls"})
    assert first["total"] == n and first["next"] == len(first["models"]) < n
    rows = json.loads(cli(daemon, "ls", "--json").stdout)
    assert sorted(r["models"][0] for r in rows) == [f"{name}@1" for name in names]
    assert "m" * 50 + "0299@1" in cli(daemon, "ls").stdout


def test_publish_through_the_daemon_is_bounded(shelf: Shelf, images: Images) -> None:
    """The daemon copies what it is sent: a pipe (no size) or an image larger than its L1
    budget is refused before anything is read."""
    import os

    from modelshelf.errors import ProtocolError

    daemon = shelf.make(l1_bytes=len(images.bytes("logreg")) + 64)
    r, w = os.pipe()
    try:
        with AdminConnection(daemon.admin_socket) as admin, pytest.raises(ProtocolError) as err:
            admin.request({"op": "publish", "model": "ns/p"}, (r,))
        assert "regular file" in str(err.value)
    finally:
        os.close(r)
        os.close(w)
    fd = os.open(images.path("pipe"), os.O_RDONLY)
    try:
        with AdminConnection(daemon.admin_socket) as admin, pytest.raises(ProtocolError) as err:
            admin.request({"op": "publish", "model": "ns/p"}, (fd,))
        assert "L1 budget" in str(err.value) and "--store" in str(err.value)
    finally:
        os.close(fd)
    assert Store(shelf.store).versions("ns", "p") == []
    fd = os.open(images.path("logreg"), os.O_RDONLY)
    try:
        with AdminConnection(daemon.admin_socket) as admin:
            assert admin.request({"op": "publish", "model": "ns/p"}, (fd,))["version"] == 1
    finally:
        os.close(fd)


def test_admin_requests_are_logged_with_the_callers_uid_and_pid(
    shelf: Shelf, images: Images
) -> None:
    """Every admin request, refused ones too, leaves one line naming the caller (SO_PEERCRED)
    and the outcome (issue 9, point 17)."""
    Store(shelf.store).publish("ns", "lr", images.bytes("logreg"))
    daemon = shelf.make(log_level="INFO")
    who = f"by uid {os.getuid()} (pid {os.getpid()})"
    daemon.admin("prefetch", model="ns/lr")
    daemon.admin("evict", model="ns/lr", tier="all")
    with pytest.raises(ShelfError, match="all"):
        daemon.admin("rm", model="ns/lr")  # the whole model, without "all": refused
    daemon.admin("rm", model="ns/lr@1")
    daemon.admin("status")  # a read: logged at DEBUG only
    logs = daemon.logs()
    for line in (
        f"modelshelfd.audit: prefetch 'ns/lr' {who}: ok, version 1",
        f"modelshelfd.audit: evict 'ns/lr' {who}: ok, version 1, tiers ['l1', 'l2']",
        f"modelshelfd.audit: rm 'ns/lr' {who}: refused [bad_request]",
        f"modelshelfd.audit: rm 'ns/lr@1' {who}: ok, removed [1]",
    ):
        assert line in logs, line
    assert "audit: status" not in logs


def test_admin_commands_on_a_stuck_or_full_daemon_say_so_quickly(
    shelf: Shelf, images: Images
) -> None:
    """A daemon that accepts and never answers held every admin command 120 s (no setting
    shortened it); a prefetch did not stop on Ctrl-C (it waited for every queued name); at the
    16 admin connections, other commands said 'no modelshelf daemon answers' (exit 6) where
    the daemon had said busy (second probe)."""
    import signal
    import time

    store = Store(shelf.store)
    for i in range(8):
        store.publish("ns", f"m{i}", images.bytes("logreg"))
    daemon = shelf.make()
    assert daemon.proc is not None
    held = [AdminConnection(daemon.admin_socket) for _ in range(16)]  # the admin socket's limit
    try:
        # status, ls and stats still answer: a prefetch holding every slot made the liveness
        # probe's `modelshelf status` fail and the daemon look dead (a probe)
        assert cli(daemon, "status").returncode == 0
        assert cli(daemon, "ls").returncode == 0
        busy = cli(daemon, "prefetch", "ns/m0", check=False)
        assert busy.returncode == 5 and "kept for" in busy.stderr and "'prefetch'" in busy.stderr
        held += [AdminConnection(daemon.admin_socket) for _ in range(4)]  # the 4 kept, taken
        full = cli(daemon, "status", check=False)
        assert full.returncode == 5 and "limit of 16 admin connections" in full.stderr, full
        assert "max_connections" not in full.stderr
    finally:
        for admin in held:
            admin.close()
    daemon.proc.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        stuck = subprocess.run(
            [sys.executable, "-m", "modelshelf.cli", "status"], capture_output=True, text=True,
            env={"MODELSHELF_ADMIN_SOCKET": daemon.admin_socket, "PATH": "/usr/bin:/bin",
                 "MODELSHELF_ADMIN_TIMEOUT": "2", "PYTHONPATH": os.environ.get("PYTHONPATH", "")},
            timeout=60, check=False,
        )  # fmt: skip
        assert time.monotonic() - started < 15
        assert stuck.returncode == 6 and "did not answer within 2 s" in stuck.stderr, stuck
        prefetch = subprocess.Popen(
            [sys.executable, "-m", "modelshelf.cli", "prefetch", *(f"ns/m{i}" for i in range(8))],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={"MODELSHELF_ADMIN_SOCKET": daemon.admin_socket, "PATH": "/usr/bin:/bin",
                 "PYTHONPATH": os.environ.get("PYTHONPATH", "")},
        )  # fmt: skip
        time.sleep(2)  # its first connections wait for the stuck daemon
        prefetch.send_signal(signal.SIGINT)
        started = time.monotonic()
        assert prefetch.wait(timeout=30) == 130
        assert time.monotonic() - started < 3
        prefetch.communicate()
    finally:
        daemon.proc.send_signal(signal.SIGCONT)
    assert cli(daemon, "status").returncode == 0  # answered again once it runs


def test_a_daemon_gone_mid_request_is_one_line_not_a_traceback(
    shelf: Shelf, images: Images
) -> None:
    """publish --json through a daemon killed meanwhile printed a traceback (EOFError) and
    nothing on stdout (a second probe)."""
    import signal
    import threading

    daemon = shelf.make()
    assert daemon.proc is not None
    proc = daemon.proc
    admin = AdminConnection(daemon.admin_socket)
    proc.send_signal(signal.SIGSTOP)  # the request waits ...
    threading.Timer(0.5, lambda: proc.send_signal(signal.SIGKILL)).start()  # ... then gone
    try:
        with pytest.raises(ShelfError, match="closed the connection before it answered 'stats'"):
            admin.request({"op": "stats"})
    finally:
        admin.close()
        proc.wait(timeout=30)
        daemon.log_handle.close()


def test_http_on_a_bracketed_ipv6_address_starts(shelf: Shelf) -> None:
    """'[::1]:PORT' passed the configuration check and the start failed with gaierror (the
    brackets went to the resolver; a second probe)."""
    import socket
    import urllib.request

    probe = socket.socket(socket.AF_INET6)
    probe.bind(("::1", 0))
    port = probe.getsockname()[1]
    probe.close()
    shelf.make(http=f"[::1]:{port}")
    with urllib.request.urlopen(f"http://[::1]:{port}/healthz", timeout=10) as reply:
        assert reply.status == 200
