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
        (lambda b: b["policies"]["l1"].update(loaded=[0, 1.0]), "loaded must be positive"),
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
