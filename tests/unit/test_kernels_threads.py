"""The compiled tree kernel's threads (``MODELSHELF_THREADS``, ``modelshelf.set_threads``) and
its binary link: a batch split over 1, 2, 3 or 8 threads gives one thread's results to the bit,
faults found by any thread are reported after the join, and the compiled sigmoid equals numpy's
link. (tests/adversarial/test_tree_kernels.py runs hostile images under threads too.)"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import modelshelf
from modelshelf import _kernels
from modelshelf.errors import ManifestError
from modelshelf.runtime import trees
from tests.kernels import require, same_bits, using
from tests.unit.runtime.test_trees import REGRESSOR, image, two_trees
from tests.unit.test_kernels import _forest, _variant


@pytest.fixture
def split_any_batch() -> Iterator[None]:
    """The kernel splits a batch only when every thread gets enough (tree, row) pairs to pay
    for starting it; here any batch of 8 rows a thread is split, so that small forests do."""
    require("compiled")
    assert _kernels.BUILT is not None
    block, pairs = _kernels.BUILT._tune()
    _kernels.BUILT._tune(0, 1)
    try:
        yield
    finally:
        _kernels.BUILT._tune(block, pairs)
        _kernels.set_threads(1)


@pytest.mark.parametrize(
    ("threshold", "values", "width"),
    [
        ("float64", None, 1),
        ("float32", None, 1),
        ("float32", "float64", 1),
        ("float64", "float32", 3),
    ],
)
@pytest.mark.usefixtures("split_any_batch")
def test_threads_give_one_threads_bits(threshold: str, values: str | None, width: int) -> None:
    rng = np.random.default_rng(hash((threshold, values, width)) % 2**32)
    arrays, params, kind = _variant(rng, threshold, values, width)
    params["input_cast"] = "float32" if threshold == "float32" else "float64"
    if kind == "tree_regressor":
        params["methods"] = ["predict"]
    reference = _forest(arrays, params, kind, "numpy")
    compiled = _forest(arrays, params, kind, "compiled")
    X = rng.normal(size=(1003, 4)) * 3
    X[rng.uniform(size=X.shape) < 0.1] = np.nan
    expected = reference.raw(X)
    W = compiled.prepare(X)
    for threads in (1, 2, 3, 8):
        out = np.empty_like(expected)
        assert compiled.kernel.raw(X, out, 1.0, threads) == threads
        assert same_bits(out, expected), f"{threads} threads"
        out = np.empty_like(expected)
        assert compiled.kernel.sum(W, out, threads) == threads  # the working-matrix path
        assert same_bits(out, expected), f"{threads} threads, working matrix"
        _kernels.set_threads(threads)
        assert same_bits(compiled.raw(X), expected)
        assert same_bits(compiled.raw(X[:20]), reference.raw(X[:20]))  # at most 2 threads


@pytest.mark.usefixtures("split_any_batch")
def test_small_batches_stay_on_one_thread() -> None:
    arrays, params, kind = _variant(np.random.default_rng(1), "float64", None, 1)
    compiled = _forest(arrays, params, kind, "compiled")
    out = np.empty((15, 3))
    assert compiled.kernel.raw(np.zeros((15, 4)), out, 1.0, 8) == 1  # fewer than 8 rows each
    _kernels.BUILT._tune(0, 1 << 15)  # the default threshold: 12 trees x 1000 rows is too few
    out = np.empty((1000, 3))
    assert compiled.kernel.raw(np.zeros((1000, 4)), out, 1.0, 8) == 1


@pytest.mark.parametrize("bad_row", [0, 500, 999])
@pytest.mark.usefixtures("split_any_batch")
def test_a_fault_in_any_thread_is_reported_after_the_join(bad_row: int) -> None:
    # Node 4 (x0 > 0.5, then x1 > -1) reads a column out of range: only the row ``bad_row``
    # goes there, in the first, a middle or the last thread's rows.
    arrays = two_trees(feature=np.array([0, 2, 1, 2, 9, 2], np.int32))
    with using("compiled"):
        model = modelshelf.load(image("boosted_regressor", arrays, REGRESSOR | {"depth": 3}))
    X = np.zeros((1000, 2))
    X[bad_row, 0] = 1.0
    for threads in (1, 3, 8):
        modelshelf.set_threads(threads)
        with pytest.raises(ManifestError, match="node 4 reads column 9"):
            model.predict(X)
        X2 = np.delete(X, bad_row, axis=0)
        assert model.predict(X2).shape == (999,)


@pytest.mark.usefixtures("split_any_batch")
def test_the_kept_workers_serve_many_callers_thread_counts_and_forked_children() -> None:
    # pool.c keeps its workers between calls and gives a worker a part of the call it was
    # posted for only (its per-thread buffer is the call's): thread counts that go up and down,
    # four Python threads calling at once (one uses the pool, the others run on their own
    # thread), a dense model's calls in between, and a forked child: one thread's bits
    import threading

    rng = np.random.default_rng(9)
    arrays, params, kind = _variant(rng, "float32", "float64", 3)
    params["input_cast"] = "float32"
    reference = _forest(arrays, params, kind, "numpy")
    compiled = _forest(arrays, params, kind, "compiled")
    X = rng.normal(size=(2003, 4)) * 3
    X[rng.uniform(size=X.shape) < 0.1] = np.nan
    expected = reference.raw(X)
    for threads in (8, 2, 3, 1, 5):
        _kernels.set_threads(threads)
        assert same_bits(compiled.raw(X), expected), threads
    _kernels.set_threads(3)
    pid = os.fork()
    if pid == 0:  # the child: none of the parent's workers, its own on its first call
        os._exit(0 if same_bits(compiled.raw(X), expected) else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    results: list[bool] = []

    def call(n: int) -> None:
        for i in range(15):
            _kernels.set_threads(1 + (n + i) % 4)  # the setting is the process's: it moves
            results.append(same_bits(compiled.raw(X), expected))

    callers = [threading.Thread(target=call, args=(n,)) for n in range(4)]
    for thread in callers:
        thread.start()
    for thread in callers:
        thread.join()
    assert results == [True] * 60


def test_set_threads_takes_whole_numbers_from_1_to_256() -> None:
    assert modelshelf.get_threads() == 1  # the default: one thread per call
    for bad in (0, -1, 257, True, 2.0, "2", None, np.int64(0)):
        with pytest.raises(ValueError, match="from 1 to 256"):
            modelshelf.set_threads(bad)  # type: ignore[arg-type]
    modelshelf.set_threads(4)
    try:
        assert modelshelf.get_threads() == _kernels.get_threads() == 4
        modelshelf.set_threads(np.int64(2))  # a probe: a numpy integer was refused
        assert modelshelf.get_threads() == 2 and type(modelshelf.get_threads()) is int
    finally:
        modelshelf.set_threads(1)


PROBE = "from modelshelf import _kernels; print(_kernels.get_threads())"


@pytest.mark.parametrize(
    ("value", "threads", "warns"),
    [("3", 3, False), ("", 1, False), ("0", 1, True), ("two", 1, True)],
)
def test_the_environment_sets_threads(value: str, threads: int, warns: bool) -> None:
    env = dict(os.environ, MODELSHELF_THREADS=value)
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, check=True, capture_output=True, text=True
    )
    assert done.stdout.split() == [str(threads)]
    assert ("MODELSHELF_THREADS" in done.stderr) == warns, done.stderr


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_compiled_sigmoid_is_numpys_link(dtype: str) -> None:
    require("compiled")
    sigmoid = _kernels.sigmoid()
    assert sigmoid is not None, "numpy's float64 exp loop was not found"
    rng = np.random.default_rng(0)
    edges = [0.0, -0.0, 1e-300, -1e-300, 30.0, -30.0, 700.0, -700.0, 746.0, -746.0, 1e300]
    edges += [-1e300, np.inf, -np.inf, np.nan]
    values = np.concatenate([edges, rng.normal(size=3000) * 10, rng.normal(size=300) * 1e3])
    with np.errstate(over="ignore", invalid="ignore"):
        raw = values.astype(dtype).reshape(-1, 1)
        p = trees._apply_link("sigmoid", raw, 1.0)
        expected = np.empty((len(raw), 2), dtype=dtype)
        expected[:, 1] = p[:, 0]
        expected[:, 0] = 1 - expected[:, 1]
    for rows in (slice(0, 1), slice(0, 7), slice(None)):
        out = np.empty_like(expected[rows])
        sigmoid(np.ascontiguousarray(raw[rows]), out)
        assert same_bits(out, expected[rows])


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"child": np.array([1, 1, 5, 3, 4, 5], np.int32)}, "node 2 leads to node 6"),
        ({"feature": np.array([0, 2, 3, 2, 2, 2], np.int32)}, "node 2 reads column 3"),
        ({"child": np.array([1, 1, 3, 3, 4, 6], np.int32)}, "node 5 leads to node 6"),
    ],
)
def test_batches_walk_unchecked_only_where_every_index_is_in_range(
    overrides: dict[str, Any], match: str
) -> None:
    """A batch of more than 8 rows, or the second call, checks every node's indices once, then
    walks without the checks; an index out of range anywhere keeps them, and calls fail as the
    first did."""
    arrays = two_trees(**overrides)
    with using("compiled"):
        model = modelshelf.load(image("boosted_regressor", arrays, REGRESSOR))
    X = np.tile([[1.0, 5.0]], (1000, 1))
    for rows in (X[:1], X[:1], X[:1], X, X[:1]):  # the second call checks every index
        with pytest.raises(ManifestError, match=match):
            model.predict(rows)
    fine = modelshelf.load(image("boosted_regressor", two_trees(), REGRESSOR))
    assert fine.predict(X).tolist() == [130.0] * 1000


def test_the_batch_constants_are_bounded() -> None:
    """The measurement hook refuses a block that would size a buffer without bound."""
    require("compiled")
    assert _kernels.BUILT is not None
    before = _kernels.BUILT._tune()
    for bad in ((65537, 0), (-1, 0), (0, -1)):
        with pytest.raises(ValueError, match="block rows must be 0"):
            _kernels.BUILT._tune(*bad)
    assert _kernels.BUILT._tune() == before
