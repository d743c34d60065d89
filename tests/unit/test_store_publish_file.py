"""``Store.publish_file``: an image file published as it is streamed, never read whole into
memory; checked before anything is stored; an upload abandoned if the file changes meanwhile;
and ``skip_unchanged`` (issue 12, point 5)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import modelshelf
from modelshelf import store as store_module
from modelshelf.errors import ChecksumError, HeaderError, StoreError, TruncatedImageError
from modelshelf.store import Store


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    return Store((tmp_path / "store").as_uri())


def _image(tmp_path: Path, n: int = 5000, name: str = "w.msi") -> Path:
    path = tmp_path / name
    path.write_bytes(modelshelf.compile_tensors({"w": np.arange(float(n))}))
    return path


def test_publish_file_stores_the_bytes_and_reports_progress(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "UPLOAD_CHUNK", 4096)  # several chunks
    path = _image(tmp_path)
    data = path.read_bytes()
    sent: list[int] = []
    info = store.publish_file("ns", "w", path, progress=sent.append)
    assert (info.version, info.unchanged, info.size) == (1, False, len(data))
    assert info.digest == hashlib.sha256(data).hexdigest()
    assert sum(sent) == len(data) and len(sent) == -(-len(data) // 4096)
    assert bytes(store.get_image(info.digest, info.size)) == data
    # the same bytes as the latest version: nothing assigned with skip_unchanged
    same = store.publish_file("ns", "w", path, skip_unchanged=True, progress=sent.append)
    assert (same.version, same.unchanged, same.digest) == (1, True, info.digest)
    assert store.versions("ns", "w") == [1]
    # without it, a new version of the same image; the image is uploaded once
    sent.clear()
    again = store.publish_file("ns", "w", path, progress=sent.append)
    assert again.version == 2 and not again.unchanged and sent == [len(data)]
    # and publish() of bytes agrees
    assert store.publish("ns", "w", data, skip_unchanged=True).unchanged
    assert store.publish("ns", "w", data).version == 3


def test_a_file_that_changes_during_the_upload_is_not_stored(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "UPLOAD_CHUNK", 4096)
    path = _image(tmp_path)
    size = path.stat().st_size

    def tamper(n: int) -> None:  # after the first chunk left: rewrite the end of the file
        with open(path, "r+b") as fh:
            fh.seek(size - 8)
            fh.write(b"\xff" * 8)

    with pytest.raises(StoreError, match="changed while it was being published"):
        store.publish_file("ns", "w", path, progress=tamper)
    assert store.list_refs() == {}
    assert not list((tmp_path / "store" / "images").glob("[0-9a-f]*[0-9a-f]"))  # nothing whole


def test_publish_file_refuses_what_is_not_a_valid_image(store: Store, tmp_path: Path) -> None:
    path = _image(tmp_path)
    data = bytearray(path.read_bytes())
    data[-1] ^= 1  # inside the array: the structure stays valid, the checksum does not
    bad = tmp_path / "bad.msi"
    bad.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="checksum mismatch"):
        store.publish_file("ns", "w", bad)
    longer = tmp_path / "longer.msi"
    longer.write_bytes(path.read_bytes() + b"junk")
    with pytest.raises(HeaderError, match="the buffer holds"):
        store.publish_file("ns", "w", longer)
    short = tmp_path / "short.msi"
    short.write_bytes(b"MSI")
    with pytest.raises(TruncatedImageError):
        store.publish_file("ns", "w", short)
    assert store.list_refs() == {}


# VmHWM, not ru_maxrss: a child's ru_maxrss starts at its parent's resident size at fork
_MEASURE = """
import json, sys
def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
from modelshelf.store import Store
store = Store(sys.argv[1])
before = peak()
info = store.publish_file("ns", "big", sys.argv[2])
print(json.dumps({"before": before, "after": peak(), "size": info.size}))
"""


def test_publishing_a_large_file_streams_it(tmp_path: Path) -> None:
    """A 200 MB image is published with well under its size in memory: no copy of it, let
    alone two (the peak resident memory of a fresh process, mapped file pages included; about
    60 MiB measured: chunks in flight). Reading the file whole would add its 200 MB."""
    path = tmp_path / "big.msi"
    weights = np.ones(25_000_000)  # 200 MB
    path.write_bytes(modelshelf.compile_tensors({"w": weights}))
    del weights
    size = path.stat().st_size
    url = (tmp_path / "store").as_uri()
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, url, str(path)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    measured = json.loads(proc.stdout)
    grew = measured["after"] - measured["before"]
    assert measured["size"] == size
    assert grew < size // 2, f"peak memory grew by {grew >> 20} MiB for a {size >> 20} MiB file"
    assert (tmp_path / "store" / "images").is_dir()
