"""modelshelf.store on a real file:// store: content addressing, versions, races, ranges,
error translation."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest

import modelshelf
from modelshelf import store as store_mod
from modelshelf.errors import (
    ChecksumError,
    MalformedRef,
    ModelNotFound,
    StoreError,
    TruncatedImageError,
)
from modelshelf.names import parse_ref
from modelshelf.store import Store, sha256


@pytest.fixture
def image() -> bytes:
    return modelshelf.compile_tensors({"w": np.arange(100_000, dtype=np.float64)})


def test_publish_resolve_read(tmp_path: Path, image: bytes) -> None:
    store = Store((tmp_path / "s").as_uri())
    info = store.publish("ns", "m", image)
    assert (info.version, info.digest, info.size) == (1, sha256(image), len(image))
    assert (tmp_path / "s" / "images" / info.digest).read_bytes() == image
    assert (tmp_path / "s" / "refs" / "ns" / "m" / f"{1:020d}").is_file()
    assert store.publish("ns", "m", image).version == 2
    assert store.resolve(parse_ref("ns/m")).version == 2
    assert store.resolve(parse_ref("ns/m@1")).digest == info.digest
    assert store.list_refs() == {"ns/m": [1, 2]}
    for range_bytes in (len(image), 4096, 1000):
        out = bytearray(len(image))
        store.read_image(info.digest, out, range_bytes=range_bytes, parallelism=3)
        assert out == image
    assert store.remove("ns", "m", 1) == [1]
    assert store.versions("ns", "m") == [2]
    assert store.remove("ns", "m") == [2]
    with pytest.raises(ModelNotFound):
        store.resolve(parse_ref("ns/m"))


def test_concurrent_publishers_get_distinct_versions(tmp_path: Path, image: bytes) -> None:
    url = (tmp_path / "s").as_uri()
    versions: list[int] = []
    barrier = threading.Barrier(6)

    def publish() -> None:
        store = Store(url)
        barrier.wait()
        versions.append(store.publish("ns", "race", image).version)

    threads = [threading.Thread(target=publish) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(versions) == [1, 2, 3, 4, 5, 6]


def test_errors(tmp_path: Path, image: bytes) -> None:
    store = Store((tmp_path / "s").as_uri())
    with pytest.raises(ChecksumError):
        store.publish("ns", "bad", image[:-1] + bytes([image[-1] ^ 1]))
    with pytest.raises(ModelNotFound, match="not found"):
        store.ref("ns", "nope", 1)
    with pytest.raises(ModelNotFound):
        store.read_image("0" * 64, bytearray(10))
    info = store.publish("ns", "m", image)
    # a stored copy of another length than its ref says is damaged (read again, then
    # image_error), not a store outage (it was StoreError: 'retry later', for ever)
    for range_bytes in (1 << 30, 4096):  # one GET, ranged GETs (a longer object passed those)
        with pytest.raises(TruncatedImageError, match="the ref says"):
            store.read_image(info.digest, bytearray(len(image) + 1), range_bytes=range_bytes)
        with pytest.raises(ChecksumError, match="the ref says"):
            store.read_image(info.digest, bytearray(len(image) - 1), range_bytes=range_bytes)
    with pytest.raises(StoreError, match="expected one of"):
        Store("http://example.com/x")
    (tmp_path / "s" / "refs" / "ns" / "m" / f"{9:020d}").write_text("{not json")
    with pytest.raises(MalformedRef, match="malformed"):
        store.ref("ns", "m", 9)


@pytest.mark.parametrize(
    "body",
    [
        {"digest": "a" * 64, "size": -5},
        {"digest": "a" * 64, "size": 0},
        {"digest": "a" * 64, "size": True},
        {"digest": "a" * 64, "size": 1 << 62},
        {"digest": "A" * 64, "size": 4096},
        {"digest": "+" + "a" * 63, "size": 4096},
        {"digest": "a_" * 32, "size": 4096},
    ],
)
def test_a_malformed_ref_is_refused(tmp_path: Path, body: dict) -> None:
    store = Store((tmp_path / "s").as_uri())
    ref = tmp_path / "s" / "refs" / "ns" / "m" / f"{1:020d}"
    ref.parent.mkdir(parents=True)
    ref.write_text(json.dumps(body))
    with pytest.raises(StoreError, match="malformed"):
        store.ref("ns", "m", 1)


def test_an_oversized_ref_is_refused_before_it_is_read(tmp_path: Path) -> None:
    store = Store((tmp_path / "s").as_uri())
    ref = tmp_path / "s" / "refs" / "ns" / "m" / f"{1:020d}"
    ref.parent.mkdir(parents=True)
    ref.write_text(json.dumps({"digest": "a" * 64, "size": 4096, "pad": "x" * 100_000}))
    with pytest.raises(StoreError, match="at most"):
        store.ref("ns", "m", 1)


def test_put_image_stores_what_it_verified(tmp_path: Path, image: bytes, monkeypatch) -> None:
    """The source may change under the publisher (a file mapped from another process): what
    is stored is the copy that was verified and hashed."""
    store = Store((tmp_path / "s").as_uri())
    source = bytearray(image)
    real = store_mod.sha256

    def hash_then_tamper(data: object) -> str:
        digest = real(data)
        source[-1] ^= 1  # the writer strikes between the hash and the upload
        return digest

    monkeypatch.setattr(store_mod, "sha256", hash_then_tamper)
    digest = store.put_image(source)
    stored = (tmp_path / "s" / "images" / digest).read_bytes()
    assert real(stored) == digest and stored == image


def _modes(root: Path) -> dict[str, int]:
    return {
        str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in [root, *root.rglob("*")]
    }


@pytest.mark.parametrize("umask", [0o000, 0o022])
def test_a_file_store_is_private_whatever_the_umask(
    tmp_path: Path, image: bytes, umask: int
) -> None:
    """Every directory the file store creates (parents and nested ones too) is 0700 and every
    file 0600 (issue 9, point 3)."""
    old = os.umask(umask)
    try:
        store = Store((tmp_path / "parent" / "s").as_uri())
        store.publish("ns", "m", image)
        store.publish("other", "m", image)
    finally:
        os.umask(old)
    modes = _modes(tmp_path / "parent")
    assert len(modes) > 8
    for rel, mode in modes.items():
        kind = 0o700 if (tmp_path / "parent" / rel).is_dir() else 0o600
        assert mode == kind, f"{rel}: {mode:o}"


def test_an_existing_open_store_directory_is_reported_not_changed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "s"
    root.mkdir()
    root.chmod(0o755)
    Store(root.as_uri())
    assert stat.S_IMODE(root.stat().st_mode) == 0o755
    assert "other local users may read every model" in caplog.text
    assert f"chmod 700 {root}" in caplog.text
    root.chmod(0o700)
    caplog.clear()
    Store(root.as_uri())
    assert caplog.text == ""


@pytest.fixture(scope="module")
def other_user() -> tuple[int, int]:
    """A real unprivileged local user (the suite runs as root, as useradd needs)."""
    name = "msf-test-other"
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/false", name], check=True)
        entry = pwd.getpwnam(name)
    return entry.pw_uid, entry.pw_gid


def test_another_local_user_cannot_read_the_store(
    other_user: tuple[int, int], image: bytes
) -> None:
    """Another user on the node can neither read an image nor list the refs, although every
    directory above the store is open to all (issue 9, point 3)."""
    uid, gid = other_user
    base = Path(tempfile.mkdtemp(prefix="msf-store-", dir="/tmp"))
    try:
        base.chmod(0o755)  # world-traversable up to the store: only its own modes protect it
        info = Store((base / "data" / "store").as_uri()).publish("ns", "m", image)
        for argv in (
            ["cat", str(base / "data" / "store" / "images" / info.digest)],
            ["ls", str(base / "data" / "store" / "refs" / "ns")],
            ["ls", str(base / "data")],
        ):
            proc = subprocess.run(
                argv, user=uid, group=gid, extra_groups=[], capture_output=True, check=False
            )
            assert proc.returncode != 0 and b"Permission denied" in proc.stderr, argv
    finally:
        shutil.rmtree(base)


def test_version_numbers_are_never_reused(tmp_path: Path, image: bytes) -> None:
    """``rm`` then publish: the new image gets a new number, so ``ns/m@2`` never comes to
    mean another model (issue 9, point 17)."""
    store = Store((tmp_path / "s").as_uri())
    assert [store.publish("ns", "m", image).version for _ in range(2)] == [1, 2]
    assert store.remove("ns", "m", 2) == [2]
    assert store.publish("ns", "m", image).version == 3
    assert store.remove("ns", "m") == [1, 3]
    assert store.publish("ns", "m", image).version == 4
    assert store.versions("ns", "m") == [4]
    with pytest.raises(ModelNotFound):
        store.ref("ns", "m", 2)
    assert store.list_refs() == {"ns/m": [4]}  # claims are not refs


def test_a_stale_listing_cannot_reuse_a_removed_number(
    tmp_path: Path, image: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A publisher whose listing predates a publish and a removal still cannot take that
    number: the claim's create-only put refuses it."""
    store = Store((tmp_path / "s").as_uri())
    store.publish("ns", "m", image)
    store.publish("ns", "m", image)
    store.remove("ns", "m")
    monkeypatch.setattr(Store, "_listed", lambda self, top, ns, name: [])  # saw nothing
    assert store.publish("ns", "m", image).version == 3


def test_refs_published_before_claims_keep_their_numbers(tmp_path: Path, image: bytes) -> None:
    store = Store((tmp_path / "s").as_uri())
    info = store.publish("ns", "m", image)
    body = (tmp_path / "s" / "refs" / "ns" / "m" / f"{1:020d}").read_bytes()
    for v in (2, 3):  # refs an earlier modelshelf wrote: no claims under versions/
        (tmp_path / "s" / "refs" / "ns" / "m" / f"{v:020d}").write_bytes(body)
    assert store.publish("ns", "m", image).version == 4
    assert store.resolve(parse_ref("ns/m@3")).digest == info.digest


def test_a_file_truncated_while_its_structure_is_checked_is_refused_not_a_crash(
    tmp_path: Path, image: bytes
) -> None:
    """The structure check mapped the file: truncated by another process meanwhile (``cp``
    over it), the read faulted and SIGBUS killed the process, the daemon when it published a
    client's descriptor. The truncation is made to land exactly there, in a child process."""
    import subprocess
    import sys

    path = tmp_path / "model.msi"
    path.write_bytes(image)
    code = f"""
import os
from modelshelf import store as s
real = s.Image
def truncating(buffer, **kw):
    os.truncate({str(path)!r}, 0)  # between the fstat and the structure's reads
    return real(buffer, **kw)
s.Image = truncating
try:
    s.Store({(tmp_path / "store").as_uri()!r}).publish_file("ns", "m", {str(path)!r})
except Exception as exc:
    print("refused", type(exc).__name__, exc)
else:
    print("published")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-1000:])
    assert proc.stdout.startswith("refused"), proc.stdout
    assert Store((tmp_path / "store").as_uri()).list_refs() == {}


def test_removing_every_version_alongside_another_removal(tmp_path: Path, image: bytes) -> None:
    """A removal of one version ran alongside `rm ns/name`: the local store's "not found" on
    the ref the other took stopped the loop (ModelNotFound, exit 3), the refs after it stayed,
    and the ones deleted were never announced (other daemons served them for minutes)."""
    import types

    from modelshelf import feed
    from modelshelf.store import ref_path

    store = Store((tmp_path / "s").as_uri())
    for _ in range(3):
        store.publish("ns", "m", image)
    assert store.versions("ns", "m") == [1, 2, 3]
    real = store._ob

    def delete(target: object, path: str) -> None:
        if path == ref_path("ns", "m", 1):  # the other removal takes version 2 meanwhile
            (tmp_path / "s" / ref_path("ns", "m", 2)).unlink()
        real.delete(target, path)

    store._ob = types.SimpleNamespace(delete=delete, list=real.list, put=real.put, get=real.get)
    assert store.remove("ns", "m") == [1, 3]
    store._ob = real
    assert store.versions("ns", "m") == []
    events = [feed.read_event(store, key) for key in store.keys("events/") if feed.is_event(key)]
    removed = [v for e in events if e.op == "remove" for v in e.versions]
    assert sorted(removed) == [1, 3]
