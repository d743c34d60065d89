"""What the daemon learned, kept across a restart (``learned.py``): written atomically, read
back as written, and refused whole when it is anything but what the daemon writes."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from modelshelfd import learned
from modelshelfd.policy import CostAwarePolicy

A, B = "a" * 64, "b" * 64


def _written(tmp_path: Path) -> Path:
    policy = CostAwarePolicy(1 << 30)
    policy.on_request(A, 1000, 0.0)
    policy.on_load(A, 1000, 0.25, 0.0)
    policy.on_request(A, 1000, 5.0)
    (tmp_path / "tmp").mkdir(exist_ok=True)
    learned.save(tmp_path, {"l1": policy.learned(6.0)}, {A: (2, 1.0), B: (7, 9.5)})
    return tmp_path / "learned.json"


def test_read_back_as_written_with_the_time_since(tmp_path: Path) -> None:
    path = _written(tmp_path)
    assert oct(path.stat().st_mode & 0o777) == "0o600" and not list((tmp_path / "tmp").iterdir())
    found = learned.load(path.parent, ("l1", "l2"))
    assert found is not None and set(found.policies) == {"l1"}
    assert found.policies["l1"]["images"][A][:4] == [2, 5.0, 25.0, 0.25]
    assert found.entries == {A: (2, 1.0), B: (7, 9.5)}
    assert 0 <= found.elapsed < 60
    assert learned.load(path.parent, ("l2",)).policies == {}  # type: ignore[union-attr]
    assert learned.load(tmp_path / "absent", ("l1",)) is None


def _mutated(path: Path, change: Any) -> None:
    body = json.loads(path.read_text())
    change(body)
    path.write_text(json.dumps(body))


@pytest.mark.parametrize(
    "change, said",
    [
        (lambda b: b.update(format=2), "not a format-1 file"),
        (lambda b: b.update(saved_at="yesterday"), "saved_at must be a number"),
        (lambda b: b["entries"].update({"../../etc": [1, 1.0]}), "is not a digest"),
        (lambda b: b["entries"].update({B: [True, 1.0]}), "hits must be a whole number"),
        (lambda b: b["entries"].update({B: [1, -1.0]}), "age must be finite, from 0"),
        (lambda b: b["entries"].update({B: [1]}), "expected [hits, age]"),
        (lambda b: b["policies"]["l1"].update(loaded=[0, 1.0]), "loaded must be bytes and"),
        # each finite and positive, their ratio 0 bytes/s: the start divided by it (a probe)
        (lambda b: b["policies"]["l1"].update(loaded=[5e-324, 1e308]), "1e+13 bytes per second"),
        (lambda b: b["policies"]["l1"].update(mean_gap=[]), "mean_gap must be a number"),
        (lambda b: b["policies"]["l1"]["images"][A].__setitem__(3, "x"), "cost must be a number"),
        (lambda b: b["policies"]["l1"]["images"][A].pop(), "expected [uses, gap, gap2, cost"),
        (lambda b: b["policies"].update(l1=[]), "l1 must be an object"),
        (lambda b: b.pop("entries"), "malformed: 'entries'"),
    ],
)
def test_anything_else_is_refused_whole(tmp_path: Path, change: Any, said: str) -> None:
    path = _written(tmp_path)
    _mutated(path, change)
    with pytest.raises(learned.LearnedError) as refused:
        learned.load(path.parent, ("l1", "l2"))
    assert said in str(refused.value)


def test_not_a_number_nor_infinity_nor_a_link_nor_too_many_rows(tmp_path: Path) -> None:
    path = _written(tmp_path)
    path.write_text(path.read_text().replace("0.25", "NaN"))  # Python's json reads NaN
    with pytest.raises(learned.LearnedError, match="must be finite"):
        learned.load(path.parent, ("l1",))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "learned.json").symlink_to(_written(tmp_path))
    with pytest.raises(learned.LearnedError, match="cannot open it"):
        learned.load(elsewhere, ("l1",))
    rows = {f"{i:064x}": [1, 1.0] for i in range(learned.MAX_IMAGES + 1)}
    body = {"format": 1, "saved_at": time.time(), "policies": {}, "entries": rows}
    path.write_text(json.dumps(body))
    with pytest.raises(learned.LearnedError, match="rows, at most 65536"):
        learned.load(path.parent, ("l1",))
    os.truncate(path, 10)
    with pytest.raises(learned.LearnedError, match="malformed"):
        learned.load(path.parent, ("l1",))


def test_times_beyond_31_years_are_read_as_31_years_and_the_policy_stays_finite(
    tmp_path: Path,
) -> None:
    """A probe set ages and gaps to 1e308: accepted (finite), then one acquire made a gap
    whose square overflowed, every priority NaN; ``ls`` could not be sent and the daemon
    wrote NaN into the file it refuses at the next start."""
    path = _written(tmp_path)

    def extreme(body: dict[str, Any]) -> None:
        body["policies"]["l1"]["images"][A] = [3, 1e308, 1e308, 1e308, 1e308]
        body["policies"]["l1"]["mean_gap"] = 1e-310
        body["entries"][B] = [7, 1e308]

    _mutated(path, extreme)
    found = learned.load(path.parent, ("l1",))
    assert found is not None
    most = learned.MAX_SECONDS
    assert found.policies["l1"]["images"][A] == [3, most, most * most, most, most]
    assert found.entries[B] == (7, most)
    policy = CostAwarePolicy(1 << 30)
    policy.restore(found.policies["l1"], 100.0, elapsed=found.elapsed)
    for now in (100.0, 101.0, 1e6):
        policy.on_request(A, 1000, now)
        policy.on_request(B, 1000, now)  # first seen: the prior of the (tiny) mean gap
        for key in (A, B):
            assert 0.0 <= policy.worth(key, 1000, now) < float("inf")
            assert 0.0 < policy.wait(key, now) < float("inf")
    json.dumps(policy.learned(1e6), allow_nan=False)  # what the stop writes: no NaN
    assert learned.load(_written(tmp_path).parent, ("l1",)) is not None


def test_a_bandwidth_that_underflows_is_never_divided_by() -> None:
    policy = CostAwarePolicy(1 << 30)
    policy.restore({"loaded": [5e-324, 1e308], "mean_gap": None, "images": {}}, 0.0)
    assert 0 < policy.bandwidth < float("inf")
    assert policy.cost(A, 1000) > 0


def test_many_small_containers_are_refused_before_they_are_parsed(tmp_path: Path) -> None:
    """64 MiB of ``{},`` parsed to 1.7 GiB before any check (a probe); the count of objects
    and arrays is bounded first."""
    path = _written(tmp_path)
    path.write_bytes(b'{"x":[' + b"{}," * 500_000 + b"{}]}")
    with pytest.raises(learned.LearnedError, match="JSON objects and arrays, at most"):
        learned.load(path.parent, ("l1",))


@pytest.mark.parametrize("how", ["another-uid", "world-writable", "group-writable"])
def test_a_file_someone_else_owns_or_may_write_is_refused(tmp_path: Path, how: str) -> None:
    """The daemon writes learned.json (and pins.json, the saved catalog) 0600 as itself; a
    probe gave one to uid 65534, mode 0666, and its hit counts and pins were trusted."""
    path = _written(tmp_path)
    if how == "another-uid":
        os.chown(path, 65534, 65534)
    else:
        path.chmod(0o666 if how == "world-writable" else 0o620)
    with pytest.raises(learned.LearnedError, match="writable by it alone"):
        learned.load(path.parent, ("l1",))


def test_an_older_snapshot_never_replaces_a_newer_one(tmp_path: Path) -> None:
    """The periodic save, cancelled at the stop, runs on in its thread: had it been taken
    before the final one, its rename could land last."""
    (tmp_path / "tmp").mkdir()
    learned.save(tmp_path, {}, {A: (2, 1.0)}, taken=10.0)
    learned.save(tmp_path, {}, {A: (1, 1.0)}, taken=5.0)  # taken earlier, written later
    found = learned.load(tmp_path, ("l1",))
    assert found is not None and found.entries == {A: (2, 1.0)}
    learned.save(tmp_path, {}, {A: (3, 1.0)}, taken=11.0)
    assert learned.load(tmp_path, ("l1",)).entries == {A: (3, 1.0)}  # type: ignore[union-attr]
