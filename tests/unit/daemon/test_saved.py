"""The catalog saved in cache_dir (saved.py): written atomically, read back as it was, and
refused whole (never half used) when it is another store's, damaged, oversized or a link."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from modelshelf.store import RefInfo
from modelshelfd import saved
from modelshelfd.saved import CATALOG_RECORD, SavedCatalogError

STORE = "s3://bucket/shelf"
DIGEST = "ab" * 32


def _write(tmp_path: Path) -> Path:
    (tmp_path / "tmp").mkdir(exist_ok=True)
    versions = {"acme/churn": [1, 3], "beta/x": [7]}
    refs = {
        ("acme/churn", 3): RefInfo("acme", "churn", 3, DIGEST, 4096, "2026-11-30", "ci"),
        ("beta/x", 7): RefInfo("beta", "x", 7, "cd" * 32, 100_000),
    }
    saved.save(tmp_path / CATALOG_RECORD, tmp_path / "tmp", STORE, versions, refs)
    return tmp_path / CATALOG_RECORD


def test_a_saved_catalog_reads_back_as_it_was(tmp_path: Path) -> None:
    path = _write(tmp_path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert list((tmp_path / "tmp").iterdir()) == []  # renamed into place
    found = saved.load(path, STORE)
    assert found is not None
    assert found.versions == {"acme/churn": [1, 3], "beta/x": [7]}
    assert found.refs[("acme/churn", 3)] == RefInfo(
        "acme", "churn", 3, DIGEST, 4096, "2026-11-30", "ci"
    )
    assert set(found.refs) == {("acme/churn", 3), ("beta/x", 7)}
    assert saved.load(tmp_path / "absent.json", STORE) is None


def test_another_stores_catalog_is_never_used(tmp_path: Path) -> None:
    with pytest.raises(SavedCatalogError, match="saved for the store"):
        saved.load(_write(tmp_path), "s3://other/shelf")


def _mutated(tmp_path: Path, change: Any) -> Path:
    path = _write(tmp_path)
    body = json.loads(path.read_text())
    change(body)
    path.write_text(json.dumps(body))
    return path


@pytest.mark.parametrize(
    "change",
    [
        lambda b: b.update(format=2),
        lambda b: b.update(saved_at="yesterday"),
        lambda b: b.update(versions=[]),
        lambda b: b["versions"].update({"../etc/passwd": [1]}),
        lambda b: b["versions"].update({"acme/Upper": [1]}),
        lambda b: b["versions"].update({"acme/x": []}),
        lambda b: b["versions"].update({"acme/x": [3, 1]}),
        lambda b: b["versions"].update({"acme/x": [0]}),
        lambda b: b["versions"].update({"acme/x": [True]}),
        lambda b: b["versions"].update({"acme/x": [2**64]}),
        lambda b: b["refs"][0].__setitem__(3, "../../x"),
        lambda b: b["refs"][0].__setitem__(4, -1),
        lambda b: b["refs"][0].__setitem__(4, 1 << 60),
        lambda b: b["refs"][0].__setitem__(4, 4096.0),
        lambda b: b["refs"][0].__setitem__(0, None),
        lambda b: b["refs"][0].__setitem__(5, 3),
        lambda b: b["refs"][0].pop(),
        lambda b: b.pop("refs"),
    ],
)
def test_a_damaged_catalog_is_refused_whole(tmp_path: Path, change: Any) -> None:
    with pytest.raises(SavedCatalogError):
        saved.load(_mutated(tmp_path, change), STORE)


def test_refs_of_versions_no_longer_listed_are_dropped(tmp_path: Path) -> None:
    path = _mutated(tmp_path, lambda b: b["versions"].update({"acme/churn": [1]}))
    found = saved.load(path, STORE)
    assert found is not None and ("acme/churn", 3) not in found.refs


def test_truncated_oversized_and_linked_files_are_refused(tmp_path: Path, monkeypatch) -> None:
    path = _write(tmp_path)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(SavedCatalogError, match="malformed"):
        saved.load(path, STORE)
    path.write_bytes(b"\xff\xfe" + raw)
    with pytest.raises(SavedCatalogError, match="malformed"):
        saved.load(path, STORE)
    path.write_bytes(raw)
    monkeypatch.setattr(saved, "MAX_SAVED_BYTES", len(raw) - 1)
    with pytest.raises(SavedCatalogError, match="at most"):
        saved.load(path, STORE)
    monkeypatch.undo()
    elsewhere = tmp_path / "elsewhere.json"
    path.rename(elsewhere)
    path.symlink_to(elsewhere)
    with pytest.raises(SavedCatalogError, match="cannot open"):
        saved.load(path, STORE)


def test_a_failed_save_leaves_the_old_catalog_and_no_temp_file(tmp_path: Path, monkeypatch) -> None:
    path = _write(tmp_path)
    before = path.read_bytes()

    def full(fd: int, data: Any) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(saved.os, "write", full)
    with pytest.raises(OSError, match="No space"):
        saved.save(path, tmp_path / "tmp", STORE, {"a/b": [1]}, {})
    assert path.read_bytes() == before and list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"format": 2, "pins": []}',
        b'{"format": 1, "pins": "ns/a@1"}',
        b'{"format": 1, "pins": [], "digests": []}',
    ],
)
def test_a_damaged_pin_list_is_refused_whole(tmp_path: Path, body: bytes) -> None:
    (tmp_path / "pins.json").write_bytes(body)
    with pytest.raises(SavedCatalogError):
        saved.Pins(tmp_path).load()


def test_a_bad_entry_is_dropped_alone_and_the_others_kept_with_their_digests(
    tmp_path: Path,
) -> None:
    """One entry that is not a versioned reference lost every pin, and the next pin rewrote
    the file without them (a probe): it is dropped alone, said in ``dropped``."""
    body = {
        "format": 1,
        "pins": ["ns/a@1", "ns/a", "../x@1", 1, "ns/b@2"],
        "digests": {"ns/a@1": DIGEST, "ns/b@2": "not a digest"},
    }
    (tmp_path / "pins.json").write_text(json.dumps(body))
    pins = saved.Pins(tmp_path)
    assert pins.load() == ["ns/a@1", "ns/b@2"]
    assert len(pins.dropped) == 3 and "'ns/a': it names no version" in pins.dropped[0]
    assert pins.hints == {"ns/a@1": DIGEST}  # a bad digest is no hint


def test_pins_are_saved_by_reference_and_dropped_by_image(tmp_path: Path) -> None:
    (tmp_path / "tmp").mkdir()
    pins = saved.Pins(tmp_path)
    assert pins.load() == []
    pins.write(pins.add("ns/a@1", DIGEST))
    pins.write(pins.add("ns/alias@3", DIGEST))  # the same bytes under another name
    pins.write(pins.add("ns/b@2", "cd" * 32))
    again = saved.Pins(tmp_path)
    assert again.load() == ["ns/a@1", "ns/alias@3", "ns/b@2"]
    assert again.hints == {"ns/a@1": DIGEST, "ns/alias@3": DIGEST, "ns/b@2": "cd" * 32}
    pins.write(pins.drop(DIGEST, "ns/a@1"))
    assert saved.Pins(tmp_path).load() == ["ns/b@2"]
    pins.write(pins.keep(["ns/c@9"]))  # not placed at this start: kept for the next
    assert saved.Pins(tmp_path).load() == ["ns/b@2", "ns/c@9"]
    # an unpin of a kept pin (never placed, so no digest here) is remembered (a probe found
    # it pinned again at the next start)
    pins.write(pins.drop("ef" * 32, "ns/c@9"))
    assert saved.Pins(tmp_path).load() == ["ns/b@2"]
    assert list((tmp_path / "tmp").iterdir()) == []


def test_an_older_snapshot_of_the_pins_is_never_written_over_a_newer(tmp_path: Path) -> None:
    """Writes run in threads: two saved at once could land in either order (an unpin undone
    at the next start)."""
    (tmp_path / "tmp").mkdir()
    pins = saved.Pins(tmp_path)
    first = pins.add("ns/a@1", DIGEST)
    second = pins.drop(DIGEST, "ns/a@1")
    pins.write(second)
    pins.write(first)  # late: skipped
    assert saved.Pins(tmp_path).load() == []


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_a_saved_file_that_is_not_a_regular_file_is_refused_at_once(
    tmp_path: Path, kind: str
) -> None:
    """A FIFO hung the start (opened blocking); a directory failed naming a descriptor."""
    for name in (CATALOG_RECORD, "pins.json"):
        path = tmp_path / name
        os.mkfifo(path) if kind == "fifo" else path.mkdir()
        with pytest.raises(SavedCatalogError, match="not a regular file"):
            if name == CATALOG_RECORD:
                saved.load(path, STORE)
            else:
                saved.Pins(tmp_path).load()


def test_the_store_identity_is_where_it_points_not_its_secrets() -> None:
    """The same s3://bucket/prefix on another endpoint is another store (its saved catalog
    served the first one's models under those names)."""
    url = "s3://bucket/shelf"
    a = saved.store_identity(url, {"endpoint": "http://a:9000", "secret_access_key": "S"}, {})
    b = saved.store_identity(url, {"endpoint": "http://b:9000"}, {})
    env = saved.store_identity(url, {}, {"AWS_ENDPOINT_URL": "http://a:9000", "HOME": "/"})
    assert len({a, b, env, url}) == 4
    assert "S" not in a.split() and "secret" not in a and "HOME" not in env
    assert saved.store_identity(url, {}, {}) == url


def test_the_pin_list_never_grows_past_what_a_restart_reads_back(
    tmp_path: Path, monkeypatch
) -> None:
    """More than MAX_PINS saved and the next start refused the whole list: pin refuses first."""
    monkeypatch.setattr(saved, "MAX_PINS", 2)
    (tmp_path / "tmp").mkdir()
    pins = saved.Pins(tmp_path)
    pins.write(pins.add("ns/a@1", DIGEST))
    assert not pins.full()
    pins.write(pins.keep(["ns/k@1"]))  # kept pins count too
    assert pins.full()
    assert saved.Pins(tmp_path).load() == ["ns/a@1", "ns/k@1"]


def test_another_stores_catalog_is_said_as_such_not_as_malformed(tmp_path: Path) -> None:
    with pytest.raises(SavedCatalogError, match=r"^saved for the store"):
        saved.load(_write(tmp_path), "s3://other/shelf")
