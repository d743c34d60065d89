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
