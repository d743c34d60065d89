"""Many models, small budgets, real worker processes: nothing refused, memory bounded, exact
predictions, leases that end with the mappings (checked against /proc), the page-cache path,
pressure trimming, and ShelfBusy only when every tier is really full."""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import modelshelf
from modelshelf.store import RefInfo, Store
from modelshelfd.policy import GATE
from modelshelfd.tiers import cost

from .conftest import Daemon, Shelf, wait_for


@dataclass(frozen=True)
class Catalog:
    refs: dict[str, RefInfo]  # "ns/name" -> ref
    expected: Path  # npz: X_<i> inputs and P_<i> scikit-learn's predict_proba, per model

    @property
    def total(self) -> int:
        return sum(r.size for r in self.refs.values())

    def size_of(self, digest: str) -> int:
        return next(r.size for r in self.refs.values() if r.digest.startswith(digest))


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    """40 real models of sizes from 1 KB to ~300 KB (logistic regressions and forests), their
    inputs and scikit-learn's own predictions as the oracle."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    root = tmp_path_factory.mktemp("bounded")
    store = Store((root / "store").as_uri())
    rng = np.random.default_rng(7)
    refs: dict[str, RefInfo] = {}
    arrays: dict[str, np.ndarray] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence on random data is beside the point
        for i in range(40):
            n_features = int(rng.integers(3, 400))
            X = rng.standard_normal((120, n_features))
            y = (X[:, 0] + rng.standard_normal(120) > 0).astype(int) + (X[:, 1] > 1)
            if i % 4 == 3:
                est = RandomForestClassifier(int(rng.integers(5, 60)), max_depth=8, random_state=i)
            else:
                est = LogisticRegression(max_iter=50)
            est.fit(X, y)
            refs[f"t{i % 5}/m{i:02d}"] = store.publish(
                f"t{i % 5}", f"m{i:02d}", modelshelf.compile(est)
            )
            arrays[f"X_{i}"] = X[:7]
            arrays[f"P_{i}"] = est.predict_proba(X[:7])
    np.savez(root / "expected.npz", **arrays)
    return Catalog(refs, root / "expected.npz")


SETUP = """
import gc, json, os
from modelshelf.errors import ShelfError
client = Client({socket!r}, max_held_bytes={held_bytes}, max_held_models={held_models})
data = np.load({expected!r})
names = {names!r}
rng = np.random.default_rng({seed})
errors, mismatches, sources, max_held = [], 0, {{}}, 0
"""

WORKLOAD = """
for step in range({steps}):
    i = min(int(rng.zipf(1.3)) - 1, len(names) - 1) if step % 3 else int(rng.integers(len(names)))
    try:
        m = client.model(names[i])
        sources[client.last_source] = sources.get(client.last_source, 0) + 1
        k = int(names[i].rsplit("m", 1)[1])
        mismatches += not np.array_equal(m.predict_proba(data[f"X_{{k}}"]), data[f"P_{{k}}"])
        del m
    except ShelfError as exc:
        errors.append(f"{{type(exc).__name__}}: {{exc}}")
    max_held = max(max_held, client.held()["bytes"])
result = {{"errors": errors[:5], "n_errors": len(errors), "mismatches": mismatches,
          "sources": sources, "max_held": max_held, "held": client.held(), "pid": os.getpid()}}
with open({out!r}, "w") as fh:
    json.dump(result, fh)
print("DONE", flush=True)
sys.stdin.readline()
for name in names:
    client.release(name)
gc.collect()
print("RELEASED", flush=True)
sys.stdin.readline()
"""


def _mapped_images(pid: int, daemon: Daemon) -> dict[str, int]:
    """The images a process maps right now, from /proc/<pid>/maps: {digest prefix: mappings}.
    Segments are memfds labelled <prefix>-<32 hex>; page-cache files are <cache>/images/<digest>."""
    found: dict[str, int] = {}
    pattern = re.compile(
        rf"(?:/memfd:{re.escape(daemon.prefix)}-|"
        rf"{re.escape(str(daemon.cache_dir))}/images/)([0-9a-f]{{32}})"
    )
    seen: set[str] = set()
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or (m := pattern.search(fields[5])) is None:
            continue
        inode_key = f"{fields[3]}:{fields[4]}"  # one mapping may show as several ranges
        if inode_key in seen:
            continue
        seen.add(inode_key)
        found[m[1]] = found.get(m[1], 0) + 1
    return found


class _Watch:
    """Samples the daemon's L1 bytes and its segments' real footprint while a test runs."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon, self.max_l1, self.max_shm = daemon, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.max_l1 = max(self.max_l1, self.daemon.admin("status")["l1"]["bytes"])
            before = self._segments()
            # a sample is one instant only if no segment came or went while it was taken (an
            # eviction and the next fill inside one sample would count both)
            if before is not None and before.keys() == (self._segments() or {}).keys():
                self.max_shm = max(self.max_shm, sum(before.values()))

    def _segments(self) -> dict[int, int] | None:
        """Each open segment's inode and its pages in bytes; None if one closed meanwhile."""
        found: dict[int, int] = {}  # one segment may be open more than once (a fill, a mapping)
        for _, path in self.daemon.segment_fds():
            try:
                st = path.stat()
            except FileNotFoundError:  # evicted meanwhile
                return None
            found[st.st_ino] = st.st_blocks * 512
        return found

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def test_many_models_through_small_budgets(shelf: Shelf, catalog: Catalog, tmp_path) -> None:
    """Three workers touch many more models than L1 (20% of the catalog) or L2 (50%) hold:
    every request is answered, exactly; L1 and the segments stay within budget; each worker holds
    within its own budget; the daemon's leases match what each process maps, and end when the
    worker drops its models while still connected."""
    l1, l2 = catalog.total // 5, catalog.total // 2
    _copy_store(catalog, shelf)
    daemon = shelf.make(l1_bytes=l1, l2_bytes=l2)
    names = sorted(catalog.refs)
    held_bytes = catalog.total // 10
    watch = _Watch(daemon)
    workers = []
    for w in range(3):
        fields = dict(
            socket=daemon.socket, held_bytes=held_bytes, held_models=12,
            expected=str(catalog.expected), names=names, seed=w, steps=400,
            out=str(tmp_path / f"w{w}.json"),
        )  # fmt: skip
        body, after = SETUP.format(**fields), WORKLOAD.format(**fields)
        workers.append(shelf.start_client(daemon.socket, body, after=after))
    for proc in workers:  # all three connected: go at once
        _say(proc)
    for proc in workers:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "DONE"
    watch.stop()
    results = [json.loads((tmp_path / f"w{w}.json").read_text()) for w in range(3)]
    for r in results:
        assert r["n_errors"] == 0, r["errors"]
        assert r["mismatches"] == 0
        assert r["max_held"] <= held_bytes and r["held"]["models"] <= 12
    status = daemon.admin("status")
    assert watch.max_l1 <= l1 and watch.max_shm <= l1, (watch.max_l1, watch.max_shm, l1)
    assert status["l2"]["bytes"] <= l2
    counters = daemon.stats()
    assert counters["refused_busy"] == 0
    assert counters["l1_evictions"] > 0 and counters["l2_evictions"] > 0
    sources = {s for r in results for s in r["sources"]}
    assert {"held", "l1", "l3"} <= sources
    # the daemon's account of each connection equals what that process maps (once the
    # releases queued by the last dropped mappings are flushed, FLUSH_DELAY later)
    for r in results:

        def matches(pid: int = r["pid"]) -> bool:
            mapped = _mapped_images(pid, daemon)
            assert all(n == 1 for n in mapped.values()), mapped  # one mapping per image
            row = next(c for c in daemon.admin("status")["clients"] if c["pid"] == pid)
            return row["leases"] == len(mapped) and row["leased_bytes"] == sum(
                catalog.size_of(d) for d in mapped
            )  # image bytes, as mapped

        wait_for(matches, timeout=5, what=f"leases of pid {r['pid']} == its mappings")
        row = next(c for c in daemon.admin("status")["clients"] if c["pid"] == r["pid"])
        assert row["leased_bytes"] <= held_bytes  # what it keeps, nothing more
    # dropping the models ends the mappings and the leases, the connections stay open
    for proc in workers:
        _say(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "RELEASED"

    def all_released() -> bool:
        s = daemon.admin("status")
        return s["leases"] == 0 and len(s["clients"]) == 3

    wait_for(all_released, what="every lease released")
    for r in results:
        assert _mapped_images(r["pid"], daemon) == {}


def _say(proc) -> None:
    assert proc.stdin is not None
    proc.stdin.write("\n")
    proc.stdin.flush()


def _copy_store(catalog: Catalog, shelf: Shelf) -> None:
    """Publish the module's catalog into this test's store (same bytes, same digests)."""
    src = Store(catalog.expected.parent.joinpath("store").as_uri())
    dst = Store(shelf.store)
    for key, ref in catalog.refs.items():
        ns, name = key.split("/")
        buf = bytearray(ref.size)
        src.read_image(ref.digest, buf)
        assert dst.publish(ns, name, bytes(buf)).digest == ref.digest


def test_pressure_trims_idle_held_models(shelf: Shelf, catalog: Catalog) -> None:
    """A worker holds idle models that fill L1; another needs room: it is served from the page
    cache at once, pressure rises on the board, the idle worker trims at its next call, and
    the image is promoted into shared memory on the next acquire."""
    _copy_store(catalog, shelf)
    names = sorted(catalog.refs, key=lambda n: catalog.refs[n].size)
    small = names[:10]
    l1 = sum(cost(catalog.refs[n].size) for n in small) + 64
    # large against L1 (above the policy's gate): its first use waits in the page cache
    newcomer = next(n for n in names[10:] if cost(catalog.refs[n].size) > GATE * l1)
    daemon = shelf.make(l1_bytes=l1)
    idle = shelf.start_client(
        daemon.socket,
        f"""
        client = Client({daemon.socket!r}, max_held_bytes={l1 * 4}, max_held_models=100)
        for name in {small!r}:
            client.model(name)
        """,
        after=f"""
        client.model({small[0]!r})  # any call notices the pressure
        print(client.trims, client.held()["models"], flush=True)
        sys.stdin.readline()
        """,
    )
    assert daemon.admin("status")["l1"]["leased_bytes"] == l1 - 64
    time.sleep(1.1)  # the held models are now idle for longer than PRESSURE_IDLE
    other = daemon.client()
    model = other.model(newcomer)  # first use while L1 is full: the page cache serves it
    assert other.last_source == "l3"
    assert daemon.admin("status")["l2"]["leased_bytes"] == cost(catalog.refs[newcomer].size)
    assert daemon.admin("status")["pressure"] == 0 and daemon.stats()["l1_not_admitted"] == 1
    del model
    other.release(newcomer)
    model = other.model(newcomer)  # second use: admitted, but L1 is full of idle leases
    assert other.last_source == "l2" and daemon.stats()["served_page_cache"] == 2
    assert daemon.admin("status")["pressure"] >= 1
    assert idle.stdin is not None and idle.stdout is not None
    idle.stdin.write("\n")
    idle.stdin.flush()
    trims, still_held = map(int, idle.stdout.readline().split())
    assert trims == 10 and still_held == 1  # every idle one went; the one asked for is back
    wait_for(
        lambda: daemon.admin("status")["l1"]["leased_bytes"] == cost(catalog.refs[small[0]].size),
        what="the trimmed leases released",
    )
    del model
    other.release(newcomer)
    assert other.model(newcomer) is not None
    assert other.last_source == "l2"  # from the page cache; promoted into the freed room

    def in_l1() -> bool:
        rows = daemon.admin("ls")["models"]
        return any("l1" in r["tiers"] and f"{newcomer}@1" in r["models"] for r in rows)

    wait_for(in_l1, what="the newcomer promoted into shared memory")


def test_busy_only_when_every_tier_is_full(shelf: Shelf, catalog: Catalog) -> None:
    """Leases fill both tiers: the next acquire raises ShelfBusy that says what is full and
    what to do; it is counted (stats and /metrics) and logged; freeing leases serves it."""
    from .test_admin import _free_port

    _copy_store(catalog, shelf)
    names = sorted(catalog.refs, key=lambda n: catalog.refs[n].size)[-3:]
    sizes = [cost(catalog.refs[n].size) for n in names]  # pages, as the tiers count them
    port = _free_port()
    daemon = shelf.make(l1_bytes=sizes[0] + 16, l2_bytes=sizes[1] + 16, http=f"127.0.0.1:{port}")
    client = daemon.client()
    held = [client.model(names[0]), client.model(names[1])]  # L1 and L2 each full of a lease
    assert daemon.admin("status")["leased_bytes"] == sizes[0] + sizes[1]
    with pytest.raises(modelshelf.ShelfBusy, match=r"every tier is full.*MAX_HELD_BYTES") as err:
        client.model(names[2])
    assert "[busy]" in str(err.value)
    assert daemon.stats()["refused_busy"] == 1
    assert "refused" in daemon.logs() and "every tier is full" in daemon.logs()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        assert 'modelshelf_events_total{event="refused_busy"} 1.0' in r.read().decode()
    del held
    client.release(names[1])
    assert client.model(names[2]).predict_proba is not None


def test_an_l2_file_removed_while_mapped(shelf: Shelf, catalog: Catalog) -> None:
    """A model served from the page cache keeps predicting after its file is removed; the
    daemon counts the file's bytes until the mapping ends."""
    _copy_store(catalog, shelf)
    name = sorted(catalog.refs)[0]
    size = catalog.refs[name].size
    daemon = shelf.make(l1_bytes=1)  # shared memory takes nothing: every image from L2
    assert "l1_bytes is 1 bytes, less than one page (4096): L1 holds no image" in daemon.logs()
    client = daemon.client()
    model = client.model(name)
    assert client.last_source == "l3" and daemon.stats()["served_page_cache"] == 1
    data = np.load(catalog.expected)
    i = int(name.rsplit("m", 1)[1])
    reply = daemon.admin("evict", model=name, tier="l2")
    assert reply["evicted"] and reply["tiers"] == ["l2"]
    assert list((daemon.cache_dir / "images").iterdir()) == []
    status = daemon.admin("status")
    assert status["l2"]["bytes"] == cost(size) and status["l2"]["retired"] == 1
    np.testing.assert_array_equal(model.predict_proba(data[f"X_{i}"]), data[f"P_{i}"])
    del model
    client.release(name)
    wait_for(lambda: daemon.admin("status")["l2"]["bytes"] == 0, what="the retired file freed")
    assert daemon.admin("status")["l2"]["retired"] == 0


def test_a_tenant_at_its_share_leaves_room_for_the_others(shelf: Shelf, tmp_path: Path) -> None:
    """Tenant "greedy" holds as many models as it can in one process; with shares of half of
    each tier it is refused once past both (naming itself), and tenant "calm", in another
    process, is still served. Without shares, "greedy" would lease both tiers full and "calm"
    would be refused."""
    store = Store(shelf.store)
    size = 0
    for base, ns in ((0, "greedy"), (100, "calm")):  # distinct images: no digest is shared
        for i in range(20):
            tensors = {"w": np.full(6000, base + i, dtype=np.float64)}
            size = cost(store.publish(ns, f"m{i}", modelshelf.compile_tensors(tensors)).size)
    rule = {"uids": [0], "l1_share": 0.5, "l2_share": 0.5}
    daemon = shelf.make(
        l1_bytes=8 * size, l2_bytes=8 * size, namespaces={"greedy": rule, "calm": {"uids": [0]}}
    )
    greedy = shelf.start_client(
        daemon.socket,
        f"""
        from modelshelf.errors import ShelfBusy
        client = Client({daemon.socket!r}, max_held_models=100)
        """,
        after="""
        held, refusal = [], ""
        for i in range(20):
            try:
                held.append(client.model(f"greedy/m{i}"))
            except ShelfBusy as exc:
                refusal = str(exc)
                break
        print(len(held), refusal, flush=True)
        sys.stdin.readline()
        """,
    )
    _say(greedy)
    assert greedy.stdout is not None
    count, _, refusal = greedy.stdout.readline().strip().partition(" ")
    assert int(count) == 8 and "namespace 'greedy' holds its share" in refusal
    calm = daemon.client()
    for i in range(4):
        assert calm.tensors(f"calm/m{i}")["w"][0] == 100 + i
    status = daemon.admin("status")
    assert status["namespaces"]["greedy"]["l1"]["leased_bytes"] == 4 * size
    assert daemon.stats()["share_fallbacks"] == 4
    assert status["namespaces"]["greedy"]["l2"]["leased_bytes"] == 4 * size
