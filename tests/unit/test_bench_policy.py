"""bench/policy.py as a user drives it with their own trace: every bad row is refused with its
line and what was expected, bad arguments before any trace is read, libCacheSim's per-request
messages counted instead of flooding the terminal, a crash reported with its signal."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
from bench import policy as sim


def _csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "trace.csv"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("time,model\n0,a\n", "size missing"),
        ("", "expected the columns time,model,size"),
        ("time,model,size\n", "no requests"),
        ("time,model,size\n0,a,100\n1,b,-5\n", ":3: size must be a whole number of bytes > 0"),
        ("time,model,size\n0,a,0\n", ":2: size must be a whole number of bytes > 0"),
        ("time,model,size\n0,a,10.5\n", ":2: size must be a whole number of bytes > 0"),
        ("time,model,size\n0,a,nan\n", ":2: size must be finite"),
        ("time,model,size\n0,a,big\n", ":2: size must be a number, got 'big'"),
        ("time,model,size\ninf,a,10\n", ":2: time must be finite"),
        ("time,model,size\n,a,10\n", ":2: time must be a number"),
        ("time,model,size\n0, ,10\n", ":2: the model name is empty"),
        ("time,model,size\n0,a\n", ":2: expected 3 fields"),
        ("time,model,size\n0,a,10,extra\n", ":2: expected 3 fields"),
        ("time,model,size,cost\n0,a,10,-1\n", ":2: cost must be >= 0 seconds"),
        ("time,model,size,cost\n0,a,10,soon\n", ":2: cost must be a number"),
    ],
)
def test_a_bad_trace_is_refused_with_its_line_and_what_was_expected(
    tmp_path: Path, body: str, says: str
) -> None:
    with pytest.raises(SystemExit) as refused:
        sim.csv_trace(_csv(tmp_path, body))
    assert says in str(refused.value)


def test_a_missing_trace_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="cannot read the trace"):
        sim.csv_trace(tmp_path / "nope.csv")


def test_rows_are_replayed_in_time_order_with_costs_from_the_row_or_the_size(
    tmp_path: Path,
) -> None:
    trace = sim.csv_trace(
        _csv(tmp_path, "time,model,size,cost\n5,a,100,2.5\n1,b,1e3,\n3,a,100,0.5\n"),
        fixed=0.01,
        bandwidth=1000.0,
    )
    assert trace.times.tolist() == [1.0, 3.0, 5.0]
    assert trace.sizes.tolist() == [1000, 100, 100]
    assert trace.costs.tolist() == [0.01 + 1.0, 0.5, 2.5]
    assert trace.keys[1] == trace.keys[2] != trace.keys[0]
    assert trace.notes == ()


def test_a_model_whose_size_changes_is_a_new_image_and_the_user_is_told(tmp_path: Path) -> None:
    trace = sim.csv_trace(_csv(tmp_path, "time,model,size\n0,a,10\n1,a,20\n2,a,10\n3,b,5\n"))
    assert trace.keys[0] == trace.keys[2] != trace.keys[1]
    assert trace.working_set == 10 + 20 + 5
    assert trace.notes and "1 of 2 models change size" in trace.notes[0]
    assert "3 images" in trace.notes[0]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--policy-arg", "bogus=1"], "bogus is not a keyword of the daemon's policy"),
        (["--policy-arg", "gate=soon"], "gate: expected a number, got 'soon'"),
        (["--policy-arg", "gate=true"], "gate: expected a number, got True"),
        (["--policy-arg", "idle_weight=-1"], "idle_weight >= 0"),
        (["--policy-arg", "gate"], "expected NAME=VALUE"),
    ],
)
def test_policy_arguments_are_checked_before_any_trace_is_read(
    tmp_path: Path, args: list[str], says: str
) -> None:
    with pytest.raises(SystemExit) as refused:
        sim.main(["--trace", str(tmp_path / "never-read.csv"), "--json", *args])
    assert says in str(refused.value)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--cache-fraction", "0"], "above 0 and at most 1"),
        (["--cache-fraction", "1.5"], "above 0 and at most 1"),
        (["--cache-fraction", "20%"], "expected a number"),
        (["--only", "LRU,nothing"], "unknown policy 'nothing'"),
        (["--only", ","], "(none named)"),
    ],
)
def test_bad_arguments_are_refused_by_the_parser(
    args: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        sim.parse_args(args)
    assert says in capsys.readouterr().err


def test_json_of_a_users_trace_names_every_policy_and_counts_libcachesims_messages(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = ["time,model,size"]
    rng = np.random.default_rng(0)
    for i in range(400):
        m = int(rng.zipf(1.5)) % 30
        rows.append(f"{i},m{m},{1000 + 100 * m if m else 50_000}")  # m0: larger than the cache
    path = _csv(tmp_path, "\n".join(rows) + "\n")
    sim.main(["--trace", str(path), "--cache-fraction", "0.2", "--json"])
    out = capsys.readouterr()
    doc = json.loads(out.out)  # stdout is the JSON object and nothing else
    assert set(doc["policies"]) >= {"modelshelf", "LRU", "S3-FIFO", "SIEVE", "GDSF", "Belady"}
    for cells in doc["policies"].values():
        for measure in ("miss_ratio", "byte_miss_ratio", "cost_miss_ratio"):
            assert cells[measure] is None or 0.0 <= cells[measure] <= 1.0
    assert "WARN" not in out.err  # collected, not flooded
    big = [n for n in doc["notes"] if "LRU at 20%" in n and "larger than cache size" in n]
    assert big and big[0].split(": ", 1)[1].split(" x ")[0].isdigit()  # counted


def test_a_replay_that_dies_of_a_signal_is_a_crash_with_its_signal_not_a_number() -> None:
    def dies() -> np.ndarray:
        os.kill(os.getpid(), signal.SIGFPE)
        return np.zeros(1, dtype=bool)

    hits, said = sim._isolated(dies, 1)
    assert hits is None
    assert said[-1] == "crashed: killed by SIGFPE"


def test_messages_are_counted_once_each_without_colour_codes() -> None:
    raw = (
        b"\x1b[33m[WARN]  11-30-2026 12:00:36  cache.c:160  (tid=1): 4 req, obj 3, size 5000 "
        b"larger than cache size 1060\n\x1b[0m"
        b"\x1b[33m[WARN]  11-30-2026 12:00:37  cache.c:160  (tid=1): 9 req, obj 7, size 6000 "
        b"larger than cache size 1060\n\x1b[0m"
        b"[ERROR] 11-30-2026 12:00:37 S3FIFO.c:121  (tid=1): Invalid cache size\n"
    )
    assert sim._messages(raw) == [
        "2 x WARN cache.c:160: an object larger than cache size 1060",
        "1 x ERROR S3FIFO.c:121: Invalid cache size",
    ]
