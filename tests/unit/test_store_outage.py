"""A file:// store whose directory is gone is unreachable (StoreError), not empty: the store
answering "not there" (ModelNotFound, an empty listing) and the store not answering at all are
told apart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import modelshelf
from modelshelf.errors import ModelNotFound, StoreError
from modelshelf.store import Store


def test_an_empty_store_answers_not_there(tmp_path: Path) -> None:
    store = Store((tmp_path / "s").as_uri())
    assert store.list_refs() == {}
    assert store.versions("ns", "m") == []
    with pytest.raises(ModelNotFound):
        store.ref("ns", "m", 1)
    with pytest.raises(ModelNotFound):
        store.read_image("0" * 64, bytearray(10))


@pytest.mark.parametrize("how", ["renamed", "removed", "replaced by a file"])
def test_a_vanished_store_directory_is_unreachable(tmp_path: Path, how: str) -> None:
    root = tmp_path / "s"
    store = Store(root.as_uri())
    image = modelshelf.compile_tensors({"w": np.arange(10, dtype=np.float64)})
    info = store.publish("ns", "m", image)
    if how == "renamed":
        root.rename(tmp_path / "aside")
    elif how == "removed":
        for path in sorted(root.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        root.rmdir()
    else:
        root.rename(tmp_path / "aside")
        root.write_text("not a directory")
    with pytest.raises(StoreError):
        store.list_refs()
    with pytest.raises(StoreError):
        store.versions("ns", "m")
    with pytest.raises(StoreError):
        store.ref("ns", "m", 1)
    with pytest.raises(StoreError):
        store.read_image(info.digest, bytearray(info.size))


_OUT_OF_DESCRIPTORS = """
import os, resource, sys
import numpy as np
from modelshelf.errors import ShelfBusy, StoreError
from modelshelf.store import Store

store = Store(sys.argv[1])
info = store.ref("ns", "m", 1)
buf = bytearray(info.size)
held = []
resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 8, 4096))
try:
    while True:
        held.append(os.open(os.devnull, os.O_RDONLY))
except OSError:
    pass
try:
    store.read_image(info.digest, buf)
except ShelfBusy as exc:
    print("busy", exc)
except StoreError as exc:
    print("store", exc)
for fd in held:
    os.close(fd)
store.read_image(info.digest, buf)
print("read", bytes(buf).hex())
"""


def test_a_process_out_of_descriptors_is_busy_not_a_store_outage(tmp_path: Path) -> None:
    """EMFILE while the store is read is this process's limit (the daemon's, at its limit):
    ShelfBusy saying so, not StoreError, which the daemon answers as the store being down."""
    import subprocess
    import sys

    root = tmp_path / "s"
    image = modelshelf.compile_tensors({"w": np.zeros(10)})
    Store(root.as_uri()).publish("ns", "m", image)
    out = subprocess.run(
        [sys.executable, "-c", _OUT_OF_DESCRIPTORS, root.as_uri()],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.splitlines()  # fmt: skip
    assert out[0].startswith("busy ") and "out of file descriptors" in out[0], out
    assert "os error 24" in out[0] and "ulimit -n" in out[0]
    assert out[1] == f"read {bytes(image).hex()}"  # the limit lifted: the same store reads


def test_a_file_store_of_another_uid_is_reported(tmp_path: Path, caplog) -> None:
    """Its owner may publish into every namespace the daemon serves (a probe's constant-7 model
    reached a tenant); only its mode was looked at."""
    import logging
    import os

    root = tmp_path / "s"
    root.mkdir(mode=0o700)
    os.chown(root, 54321, 54321)  # the tests run as root
    with caplog.at_level(logging.WARNING, logger="modelshelf"):
        Store(root.as_uri())
    assert "belongs to uid 54321" in caplog.text


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://x", "expected one of"),
        ("file://relative/path", "file:///absolute/path"),
        ("s3://", "name the bucket"),
        ("file:///proc/no-modelshelf-store", "does not exist"),  # nobody can create it
    ],
)
def test_a_store_url_that_cannot_name_a_store_is_bad_input(url: str, says: str) -> None:
    """A typo was an outage (store_unavailable, exit 7): a script retrying on 7 retried it
    for ever, and obstore's 'Unable to recognise URL' did not say the form (second probe)."""
    from modelshelf.errors import InvalidStoreURL

    with pytest.raises(InvalidStoreURL, match=says) as info:
        Store(url, create=False)  # as the CLI opens a store it reads
    assert (info.value.code, info.value.exit_status) == ("bad_input", 2)
