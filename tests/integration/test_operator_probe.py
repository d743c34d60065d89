"""What an independent operator's probe found, against a real daemon and the real command
line: a pickle named .msi is never unpickled, `rm ns/name@latest` never removes every version,
concurrent publishes of the same bytes make one version, a budget shrunk under leases is met
once they end, an image larger than every tier says so, a non-admin user is told access is
denied, a pattern matching nothing is reported in JSON too, `connections_refused` reaches
/metrics, FP32/FP16 overflow is refused as the input's fault, a reload can switch HTTP off and
on again at once, and read-only commands never create a store from a typo."""

from __future__ import annotations

import json
import os
import pickle
import re
import signal
import subprocess
import sys
import threading
import time
import tomllib
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import modelshelf
from modelshelf.client import Client
from modelshelf.errors import ShelfBusy, ShelfError
from modelshelf.store import Store

from .conftest import Daemon, Images, Shelf, wait_for, write_config
from .test_cli import cli
from .test_oip import _free_port


def _infer_refused(port: int, model: str, body: dict[str, Any]) -> tuple[int, str]:
    """The status and message of an inference the endpoint must refuse."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v2/models/{model}/infer", data=json.dumps(body).encode()
    )
    try:
        urllib.request.urlopen(request, timeout=30)
    except urllib.error.HTTPError as exc:
        return exc.code, str(json.loads(exc.read())["error"])
    raise AssertionError(f"{model}: the inference was accepted")


class _Planted:
    """Unpickling this writes a marker file: the proof that a pickle ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path(self.marker).write_text, ("unpickled",))


def test_a_pickle_named_msi_is_refused_not_unpickled(shelf: Shelf, tmp_path: Path) -> None:
    daemon = shelf.make()
    marker = tmp_path / "ran"
    planted = tmp_path / "model.msi"
    planted.write_bytes(pickle.dumps(_Planted(str(marker))))
    proc = cli(daemon, "publish", "ns/m", str(planted))
    assert proc.returncode != 0 and "it was not unpickled" in proc.stderr
    assert not marker.exists()
    empty = tmp_path / "empty.joblib"
    empty.write_bytes(b"")
    proc = cli(daemon, "publish", "ns/m", str(empty))
    assert proc.returncode == 2 and "an empty file" in proc.stderr
    proc = cli(daemon, "publish", "ns/m", str(tmp_path))
    assert proc.returncode == 2 and "a directory" in proc.stderr


def test_rm_at_latest_is_refused_and_removes_nothing(shelf: Shelf, images: Images) -> None:
    store = Store(shelf.store)
    for name in ("logreg", "pipe"):
        store.publish("ns", "m", images.bytes(name))
    daemon = shelf.make()
    proc = cli(daemon, "rm", "ns/m@latest", "--yes")
    assert proc.returncode == 2 and "rm takes a version's number" in proc.stderr
    with pytest.raises(ShelfError, match=r"ns/m@latest would remove whichever"):
        daemon.admin("rm", model="ns/m@latest", all=True)  # the daemon refuses it too
    assert store.versions("ns", "m") == [1, 2]


def test_concurrent_publishes_of_the_same_bytes_make_one_version(
    shelf: Shelf, images: Images, tmp_path: Path
) -> None:
    daemon = shelf.make()
    path = tmp_path / "m.msi"
    path.write_bytes(images.bytes("logreg"))
    results: list[subprocess.CompletedProcess[str]] = []
    threads = [
        threading.Thread(target=lambda: results.append(cli(daemon, "publish", "ns/m", str(path))))
        for _ in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    assert Store(shelf.store).versions("ns", "m") == [1]
    assert sum("unchanged" in r.stdout for r in results) == 5


_THREE = ("logreg", "pipe", "ridge")


def _shrink_l1(daemon: Daemon) -> None:
    """SIGHUP with L1's budget lowered to one page, once the reload applied it."""
    values = tomllib.loads(daemon.config_path.read_text())
    write_config(daemon.config_path, {**values, "l1_bytes": 4096})
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "l1_bytes" in daemon.logs().split("reloaded:")[-1], what="the reload")


def _l1(daemon: Daemon) -> dict[str, int]:
    return dict(daemon.admin("status")["l1"])


def test_a_budget_shrunk_under_leases_is_met_when_they_end(shelf: Shelf, images: Images) -> None:
    for name in _THREE:
        Store(shelf.store).publish("ns", name, images.bytes(name))
    daemon = shelf.make(log_level="INFO")
    client = daemon.client()
    held = [client.model(f"ns/{name}") for name in _THREE]
    _shrink_l1(daemon)
    assert _l1(daemon)["budget"] == 4096 and _l1(daemon)["bytes"] > 4096  # leased: they stay
    del held
    client.close()
    wait_for(lambda: _l1(daemon)["bytes"] <= 4096, what="L1 back within its budget")


def test_an_image_larger_than_every_tier_says_so(shelf: Shelf, images: Images) -> None:
    Store(shelf.store).publish("ns", "big", images.bytes("blob48m"))
    daemon = shelf.make(l1_bytes="1M", l2_bytes="2M")
    with pytest.raises(ShelfBusy, match="larger than both tiers"):
        daemon.admin("prefetch", model="ns/big")
    stats = daemon.stats()
    assert stats["refused_too_large"] == 1 and stats["refused_busy"] == 1  # one of the other
    # refused before any tier is tried: no tier "could not make room" (it counted L1 twice)
    assert (stats["l1_full"], stats["l2_full"], stats["bytes_fetched"]) == (0, 0, 0)


def test_tiers_under_one_page_say_so(shelf: Shelf, images: Images) -> None:
    """An image under one page, with tiers under one page: its size in whole pages is said,
    not only its bytes (848 bytes 'larger than' L2's 4095 read as a contradiction: a probe),
    and the start says the tiers hold nothing."""
    Store(shelf.store).publish("ns", "small", images.bytes("logreg"))
    tiny = shelf.make(l1_bytes=1, l2_bytes=4095)
    assert "l2_bytes is 4095 bytes, less than one page" in tiny.logs()
    with pytest.raises(ShelfBusy, match=r"bytes \(4096 in the whole pages a tier counts\) is"):
        tiny.admin("prefetch", model="ns/small")


def test_a_pattern_matching_nothing_is_reported_in_json_and_exits_3(
    shelf: Shelf, images: Images
) -> None:
    Store(shelf.store).publish("ns", "m", images.bytes("logreg"))
    daemon = shelf.make()
    wait_for(lambda: daemon.admin("names", pattern="ns/*")["names"], what="the catalog")
    proc = cli(daemon, "--json", "prefetch", "zzz/*", "ns/m")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert {"pattern": "zzz/*", "ok": False, "code": "not_found"}.items() <= lines[0].items()
    assert lines[-1]["summary"]["unmatched_patterns"] == 1 and proc.stderr == ""


def test_metrics_count_refused_connections_and_float_overflow_is_the_inputs(
    shelf: Shelf, images: Images
) -> None:
    Store(shelf.store).publish("ns", "m", images.bytes("logreg"))
    port = _free_port()
    daemon = shelf.make(http=f"127.0.0.1:{port}", max_connections=1)
    first = daemon.client()
    first.model("ns/m")
    refused = subprocess.run(
        [sys.executable, "-c", "import modelshelf.client as c, sys; "
         f"c.Client({daemon.socket!r}, timeout=5).model('ns/m')"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert refused.returncode != 0
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
        text = r.read().decode()
    assert 'modelshelf_events_total{event="connections_refused"} 1.0' in text
    body = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                        "data": [1e300, 2.0, 3.0, 4.0]}]}  # fmt: skip
    status, message = _infer_refused(port, "ns:m", body)
    assert status == 400 and "does not fit FP32" in message
    assert "RuntimeWarning" not in daemon.logs()


def test_http_switched_off_then_on_again_at_once(shelf: Shelf) -> None:
    port = _free_port()
    daemon = shelf.make(http=f"127.0.0.1:{port}", log_level="INFO")
    values = tomllib.loads(daemon.config_path.read_text())
    assert daemon.proc is not None
    for address, reloads in (("", 1), (f"127.0.0.1:{port}", 2)):
        write_config(daemon.config_path, {**values, "http": address})
        daemon.proc.send_signal(signal.SIGHUP)
        wait_for(
            lambda n=reloads: daemon.logs().count("configuration reloaded: http") == n,
            what=f"reload {reloads}",
        )
    assert "not reloaded" not in daemon.logs()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=30) as r:
        assert r.status == 200


def test_read_only_commands_never_create_a_store_from_a_typo(shelf: Shelf, tmp_path: Path) -> None:
    daemon = shelf.make()
    typo = tmp_path / "typo"
    for args in (("models", "--store"), ("gc", "--dry-run", "--store")):
        proc = cli(daemon, *args, typo.as_uri())
        # bad input (exit 2), not an outage to retry (7)
        assert proc.returncode == 2 and "does not exist" in proc.stderr, proc.stderr
    assert not typo.exists()


def test_slow_chunked_uploads_do_not_hold_the_body_budget(shelf: Shelf, images: Images) -> None:
    """A chunked body has no length to reserve: it counts what has arrived. Four uploads left
    open held the whole budget (4 x http_max_body) with nothing sent, and every other
    inference got 503."""
    import socket

    Store(shelf.store).publish("ns", "m", images.bytes("logreg"))
    port = _free_port()
    daemon = shelf.make(http=f"127.0.0.1:{port}")
    head = (
        b"POST /v2/models/ns:m/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Transfer-Encoding: chunked\r\n\r\n5\r\n{"inp\r\n'
    )
    slow = []
    try:
        for _ in range(6):
            sock = socket.create_connection(("127.0.0.1", port), timeout=30)
            sock.sendall(head)  # and nothing more
            slow.append(sock)
        body = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64",
                            "data": [5.0, 3.0, 1.5, 0.2]}]}  # fmt: skip
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v2/models/ns:m/infer", data=json.dumps(body).encode()
        )
        with urllib.request.urlopen(request, timeout=30) as r:
            assert r.status == 200
        assert daemon.stats().get("http_infer_queue_full", 0) == 0
    finally:
        for sock in slow:
            sock.close()


def test_requests_the_http_parser_refuses_are_counted_and_answered_in_json(
    shelf: Shelf,
) -> None:
    """Refusals of aiohttp's parser were its plain text ("400, message: ..."); every other
    refusal of the HTTP API is the protocol's ``{"error": ...}``."""
    import socket

    port = _free_port()
    daemon = shelf.make(http=f"127.0.0.1:{port}")
    raws = (
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
        b"POST /v2/models/ns:m/infer HTTP/1.1\r\nHost: x\r\n" + b"X: " + b"a" * 9000 + b"\r\n\r\n",
    )
    for raw in raws:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(raw)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.0 4"), head
        assert b"Content-Type: application/json" in head, head
        message = json.loads(body)["error"]
        assert message.startswith("the HTTP request is malformed: "), message
        assert "\n" not in message and len(message) < 300
    wait_for(lambda: daemon.stats().get("http_bad_requests") == len(raws), what="all counted")


def test_one_feature_tensor_of_several_says_which_are_missing(shelf: Shelf) -> None:
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    import modelshelf

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(60, 4)), columns=["a", "b", "c", "d"])
    est = LogisticRegression().fit(frame, (frame["a"] > 0).astype(int))
    Store(shelf.store).publish("ns", "named", modelshelf.compile(est))
    port = _free_port()
    shelf.make(http=f"127.0.0.1:{port}")
    body = {"inputs": [{"name": "a", "shape": [2], "datatype": "FP64", "data": [0.5, -1.0]}]}
    status, message = _infer_refused(port, "ns:named", body)
    assert status == 400 and message.startswith("features missing from the inputs: b, c, d")


def test_metadata_outputs_are_what_inference_answers(shelf: Shelf) -> None:
    import numpy as np
    from sklearn.cluster import KMeans
    from sklearn.ensemble import IsolationForest, RandomForestClassifier
    from sklearn.linear_model import Ridge

    import modelshelf

    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 3))
    models = {
        "iso": IsolationForest(n_estimators=5, random_state=0).fit(X),
        "km": KMeans(3, n_init=1, random_state=0).fit(X),
        "ridge2": Ridge().fit(X, X[:, :2]),
        "multi": RandomForestClassifier(3, random_state=0).fit(X, (X[:, :2] > 0).astype(int)),
    }
    store = Store(shelf.store)
    for name, est in models.items():
        store.publish("ns", name, modelshelf.compile(est))
    port = _free_port()
    shelf.make(http=f"127.0.0.1:{port}")
    base = f"http://127.0.0.1:{port}/v2/models/ns:"
    for name in models:
        with urllib.request.urlopen(base + name, timeout=30) as r:
            outputs = {o["name"]: o for o in json.loads(r.read())["outputs"]}
        assert "predict_proba" not in outputs or name != "multi"  # a list: no tensor
        body = {
            "inputs": [{"name": "input", "shape": [2, 3], "datatype": "FP64", "data": [0.1] * 6}],
            "outputs": [{"name": method} for method in outputs],
        }
        request = urllib.request.Request(base + name + "/infer", data=json.dumps(body).encode())
        with urllib.request.urlopen(request, timeout=30) as r:
            answered = json.loads(r.read())["outputs"]
        for out in answered:
            meta = outputs[out["name"]]
            assert meta["datatype"] == out["datatype"], (name, out["name"], meta)
            assert meta["shape"][1:] == out["shape"][1:], (name, out["name"], meta)


def test_a_reload_keeps_a_share_budget_the_disk_moved_under(shelf: Shelf) -> None:
    """l2_bytes = "50%" is a share of the free space at start: a SIGHUP with the same file is
    no change, however full the disk has become (L2's own files fill it)."""
    daemon = shelf.make(l2_bytes="50%", log_level="INFO")
    budget = daemon.admin("status")["l2"]["budget"]
    filler = shelf.tmp / "filler"
    with open(filler, "wb") as fh:
        fh.write(b"\0" * (64 << 20))
        fh.flush()
        os.fsync(fh.fileno())
    try:
        assert daemon.proc is not None
        daemon.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "SIGHUP: configuration" in daemon.logs(), what="the reload")
        assert "SIGHUP: configuration unchanged" in daemon.logs(), daemon.logs()[-500:]
        assert daemon.admin("status")["l2"]["budget"] == budget
    finally:
        filler.unlink()


def test_a_reload_says_when_the_environment_overrides_the_edited_key(shelf: Shelf) -> None:
    """The file's edit of a key the environment sets is not applied, and the reload says why
    (a probe found "configuration unchanged" and nothing more); an edit of another key
    applies as before."""
    daemon = shelf.make(log_level="INFO", env={"MODELSHELF_IDLE_TIMEOUT": "300"})
    text = daemon.config_path.read_text()
    daemon.config_path.write_text(text + "idle_timeout = 30.0\n")
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "SIGHUP: configuration" in daemon.logs(), what="the reload")
    assert "SIGHUP: configuration unchanged" in daemon.logs()
    assert (
        "the config file sets idle_timeout, but MODELSHELF_IDLE_TIMEOUT, given at start, "
        "overrides it" in daemon.logs()
    )
    # the same value in the file and the environment: nothing to say
    daemon.config_path.write_text(text + "idle_timeout = 300\nsend_timeout = 7.0\n")
    daemon.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "configuration reloaded: send_timeout" in daemon.logs(), what="the reload")
    assert daemon.logs().count("overrides it") == 1


def test_a_budget_shrunk_under_pins_is_met_when_they_go(shelf: Shelf, images: Images) -> None:
    for name in _THREE:
        Store(shelf.store).publish("ns", name, images.bytes(name))
    daemon = shelf.make(log_level="INFO")
    for name in _THREE:
        daemon.admin("pin", model=f"ns/{name}")
    _shrink_l1(daemon)
    assert _l1(daemon)["bytes"] > 4096  # pinned: they stay
    for name in _THREE:
        daemon.admin("unpin", model=f"ns/{name}")
    assert _l1(daemon)["bytes"] <= 4096


def test_a_pinned_version_removed_from_the_store_can_still_be_unpinned_and_evicted(
    shelf: Shelf, images: Images
) -> None:
    """A probe pinned ns/x@1 and removed it: unpin and evict answered 'not found in the
    store' and the copy stayed pinned until a restart dropped the pin."""
    store = Store(shelf.store)
    store.publish("ns", "x", images.bytes("logreg"))
    store.publish("ns", "y", images.bytes("ridge"))
    daemon = shelf.make()
    for name in ("ns/x@1", "ns/y@1"):
        daemon.admin("pin", model=name)
    daemon.admin("rm", model="ns/x@1")
    daemon.admin("rm", model="ns/y@1")
    daemon.admin("unpin", model="ns/x@1")
    rows = daemon.admin("ls")["models"]
    assert [r["pinned"] for r in rows if "ns/x@1" in r["models"]] == [False]
    pins = (daemon.cache_dir / "pins.json").read_text()
    assert "ns/x@1" not in pins and "ns/y@1" in pins
    assert daemon.admin("evict", model="ns/x@1", tier="all")["evicted"] is True
    with pytest.raises(ShelfError, match="pinned; unpin it first"):
        daemon.admin("evict", model="ns/y@1")  # still pinned: the rule holds for it
    with pytest.raises(ShelfError, match=r"not found|no model"):
        daemon.admin("unpin", model="ns/z@1")  # never here: still not found


def test_status_lists_every_namespace_with_a_share_leased_or_not(shelf: Shelf) -> None:
    rule = {"uids": [0], "l1_share": 0.25, "l2_share": 0.5}
    daemon = shelf.make(namespaces={"team": rule, "other": {"uids": [0]}})
    status = daemon.admin("status")["namespaces"]
    assert set(status) == {"team"} and set(status["team"]) == {"l1", "l2"}
    assert status["team"]["l1"]["leased_bytes"] == 0 and status["team"]["l1"]["share"] == 0.25
    text = cli(daemon, "status").stdout
    assert re.search(r"team\s+L1\s+0 B\s+25%", text) and re.search(r"team\s+L2\s+0 B\s+50%", text)


def test_the_default_held_advice_follows_l1_capped_to_the_memory_limit(
    shelf: Shelf, images: Images
) -> None:
    """l1_bytes above 75% of the memory limit is capped at start; the clients' default held
    bytes were an eighth of the configured bytes (two workers could lease all of L1), and the
    ready line named the uncapped L1. A reload that moves l1_bytes keeps the advice capped."""
    Store(shelf.store).publish("ns", "logreg", images.bytes("logreg"))

    def advised(daemon: Daemon) -> int:
        client = daemon.client()
        client.model("ns/logreg")  # connected: the daemon's advice taken
        return int(client.held()["max_bytes"])

    daemon = shelf.make(l1_bytes="64T", log_level="INFO")
    budget = _l1(daemon)["budget"]
    assert budget < 64 << 40
    assert advised(daemon) == budget // 8
    ready = next(line for line in daemon.logs().splitlines() if "listening:" in line)
    assert f"L1 {budget} bytes" in ready and f"up to {budget // 8} bytes" in ready, ready
    values = tomllib.loads(daemon.config_path.read_text())
    write_config(daemon.config_path, {**values, "l1_bytes": "128T"})
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "reloaded:" in daemon.logs(), what="the reload")
    assert advised(daemon) == budget // 8
    given = shelf.make("b", l1_bytes="64T", client_held_bytes="1M")  # the operator's, as given
    assert advised(given) == 1 << 20


def test_a_namespace_at_its_share_asks_its_clients_to_let_go(shelf: Shelf) -> None:
    """Refused at its share, a namespace's clients were never signalled (pressure_signals
    stayed 0): they kept their idle models, and every later request was refused. As a tier full
    of leases does, the refusal raises the pressure: after a second idle, the next is served."""
    store = Store(shelf.store)
    for i in range(20):
        store.publish("ns", f"t{i}", modelshelf.compile_tensors({"w": np.full(7000, float(i))}))
    rule = {"uids": [0], "l1_share": 0.25, "l2_share": 0.25}
    daemon = shelf.make(l1_bytes="1M", l2_bytes="1M", namespaces={"ns": rule})
    client = Client(daemon.socket, max_held_bytes=16 << 20)
    refused_at = None
    for i in range(20):
        try:
            client.tensors(f"ns/t{i}")
        except ShelfBusy as exc:
            assert "holds its share" in str(exc)
            refused_at = i
            break
    assert refused_at is not None
    assert daemon.stats()["pressure_signals"] >= 1
    time.sleep(1.5)  # the held models are idle for more than a second: dropped at the next call
    for i in range(refused_at, refused_at + 3):
        client.tensors(f"ns/t{i}")
    client.close()


def test_a_pin_places_a_large_image_the_admission_rule_kept_out(shelf: Shelf) -> None:
    """An image over a tenth of L1 on its first use is served from the page cache (the
    admission rule); a pin of it was refused "not in L1 (it did not fit)" until asked twice."""
    store = Store(shelf.store)
    for i in range(8):
        store.publish("ns", f"s{i}", modelshelf.compile_tensors({"w": np.full(4000, float(i))}))
    store.publish("ns", "big", modelshelf.compile_tensors({"w": np.zeros(6000)}))
    daemon = shelf.make(l1_bytes="256K", policy="cost")
    client = Client(daemon.socket, max_held_models=1)
    for i in range(8):
        client.tensors(f"ns/s{i}")  # L1 full of images nobody holds
    client.close()
    reply = daemon.admin("pin", model="ns/big")
    assert "l1" in reply["tiers"], reply
    (row,) = [r for r in daemon.admin("ls")["models"] if r["models"][0] == "ns/big@1"]
    assert row["pinned"]


def test_the_generation_gauge_moves_with_the_catalog(shelf: Shelf, images: Images) -> None:
    """The catalog generation starts at a random 63-bit number: as a float, /metrics lost
    its low bits and the gauge never moved on a publish."""
    port = _free_port()
    daemon = shelf.make(http=f"127.0.0.1:{port}", ref_poll_seconds=0.1)

    def gauge() -> float:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
            text = r.read().decode()
        return float(re.search(r"^modelshelf_generation (\S+)$", text, re.M)[1])  # type: ignore[index]

    before = gauge()
    Store(shelf.store).publish("ns", "lr", images.bytes("logreg"))
    wait_for(lambda: gauge() != before, what="the gauge to move")
    assert gauge() == daemon.admin("status")["generation"] % (1 << 53)
