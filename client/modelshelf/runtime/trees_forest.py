"""Tree ensembles, the shared core: the flat node arrays of every tree and their traversal.

docs/format.md ("Tree ensembles") specifies the arrays byte by byte; in short:

- Nodes of all trees share the arrays; ``roots[t]`` is tree t's root. Children are global
  node indices, siblings adjacent: a node's children are ``child`` and ``child + 1``. Writers
  lay nodes out level by level across trees; ``level_offsets``, if present, says where each
  level starts (nothing else relies on the order).
- A sample goes to ``child + 1`` iff ``x > threshold``, where ``x`` is column ``feature`` of
  the working matrix (the input cast as the model's library casts it, plus extra columns below).
  A NaN ``x`` goes to ``child + missing`` instead (one bit per node, packed little-endian).
  Converters fold each library's comparison (``<=``, ``<``, float32 rounding, missing-value
  rules) into these fields.
- A leaf is its own child, and its feature is the sentinel column ``n_features``, which holds
  -inf: ``-inf > t`` is false, so a sample that reached a leaf stays there. The traversal runs
  ``depth`` steps without testing for leaves. The leaf's threshold slot holds its payload: its
  output itself, or, when a ``leaf_values`` table exists, its row in that table.
- Categorical splits read columns ``n_features + 1 + j``: 1.0 if the sample's category is in
  split j's bitset, 0.0 if not, NaN if missing; the split node itself is numeric (t = 0.5).
  They are computed once per batch, so categorical models traverse as fast as numeric ones.

The traversal (runtime/trees_walk.py) advances a (trees x rows) vector of node indices one depth
level per step, gathering each pair's node fields. A single row first walks its first levels
(all of them for a small forest) through a table of every node's next node, decided at once;
how many is fixed at load by a cost model of numpy's per-call overhead and per-node work.
Outputs are summed over trees in the library's order, starting from the base score (CatBoost:
from zero, its bias added to the sum, ``base_last``), so sums agree to the last bit.

Where the compiled kernels are built (modelshelf/_kernels), a ``Forest`` hands its arrays to
the compiled ``Trees`` at load and ``raw`` calls it instead of the walks and sums here: the same
working matrix in, the same sums out, bit for bit (linear leaves stay with numpy). A forest
without categorical, encoded or zero-missing columns gives the kernel its inputs as they are
(``Trees.raw`` casts them and divides the sums itself); large batches may be split over threads
(``modelshelf.set_threads``). This module
stays the reference that the compiled kernel is tested against.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import _kernels
from ..errors import FeatureCountError, ManifestError
from ._base import Spec
from ._input import check_float32_range, ready_float64
from .trees_linear import LinearLeaves
from .trees_walk import walk_levels, walk_table

INPUT_CASTS = ("float32", "float64")
CATEGORY_CASTS = ("trunc", "floor")
#: LightGBM's kZeroThreshold (the float 1e-35f, as a double): |x| <= this is "zero".
LIGHTGBM_ZERO = float(np.float32(1e-35))
# Built at import: the first np.dtype or np.result_type call in a process costs ~10 us each,
# which a fresh process's first model load would pay (bench/first_acquire.py).
_CASTS = {cast: np.dtype(cast) for cast in INPUT_CASTS}
_WORK = {
    (np.dtype(t), cast): np.result_type(np.dtype(t), _CASTS[cast])
    for t in ("float16", "float32", "float64")
    for cast in INPUT_CASTS
}
_MAX_DEPTH = 1 << 16
MAX_FEATURES = (1 << 31) - 2  # input columns: the sentinel column n_features fits an int32
MAX_OUTPUTS = 1 << 16  # outputs a forest sums (classes x targets): far above any model's
_BLOCK = 1 << 16  # (tree, row) pairs per block: bounds temporaries, keeps them in cache
_KERNEL_BLOCK = 1 << 14  # rows of a working matrix per compiled call: bounds its memory
# The cost model choosing the kernels for one row, in nanoseconds, measured on the benchmark's
# forests: a step of the level walk costs about seven numpy calls plus work per pair; the table
# walk costs three passes over the nodes it covers, then one small gather per step.
_WALK_STEP, _WALK_PAIR = 4000.0, 6.0
_COMPACT_LEFT = 0.5  # compact once the walking pairs are expected to drop below this share
_TABLE_FIXED, _TABLE_NODE, _TABLE_STEP = 3000.0, 2.5, 300.0


class Forest:
    """The nodes of every tree of one model, and the kernels that walk them."""

    __slots__ = (
        "base",
        "bias",
        "cat_cast",
        "cat_column",
        "cat_offsets",
        "cat_words",
        "check_range",
        "child",
        "compact",
        "depth",
        "divisor",
        "dtype",
        "encode_column",
        "encode_offsets",
        "encode_values",
        "feature",
        "groups",
        "input_dtype",
        "kernel",
        "leaf_values",
        "level_offsets",
        "linear",
        "missing",
        "n_features",
        "n_outputs",
        "out_divisor",
        "plain",
        "roots",
        "table_levels",
        "table_nodes",
        "threshold",
        "width",
        "work_dtype",
        "zero_missing",
    )

    def __init__(self, spec: Spec) -> None:
        feature = spec.array("feature", ndim=1, kind="i")
        threshold = spec.array("threshold", ndim=1, kind="f")
        child = spec.array("child", ndim=1, kind="i")
        n_nodes = len(feature)
        spec.check(n_nodes >= 1, "a forest needs at least one node")
        for role, arr in (("threshold", threshold), ("child", child)):
            if arr.shape != (n_nodes,):
                spec.fail(f"array {role!r} must hold {n_nodes} values")
        missing = spec.array("missing", ndim=1, kind="u", optional=True)
        if not (
            missing is None or (missing.dtype == np.uint8 and len(missing) == (n_nodes + 7) // 8)
        ):
            spec.fail(f"missing must pack one bit per node into {(n_nodes + 7) // 8} uint8")
        roots = spec.array("roots", ndim=1, kind="i")
        n_trees = len(roots)
        spec.check(n_trees >= 1, "a forest needs at least one tree")
        leaf_values = spec.array("leaf_values", ndim=2, kind="f", optional=True)
        self.width = 1 if leaf_values is None else leaf_values.shape[1]
        spec.check(self.width >= 1, "leaf_values needs at least one column")
        # a table of no rows serves no leaf, and would let a declared width size the output
        spec.check(leaf_values is None or len(leaf_values) >= 1, "leaf_values has no rows")

        self.n_features = _count(spec, "n_features")
        if self.n_features > MAX_FEATURES:  # node features are int32 indices
            spec.fail(f"n_features {self.n_features} is above {MAX_FEATURES}")
        self.depth = _count(spec, "depth")
        if not (self.depth <= min(n_nodes, _MAX_DEPTH)):
            spec.fail(f"depth {self.depth} is impossible")
        groups = spec.param("groups", list, [0, n_trees])
        if not (
            len(groups) >= 2
            and all(isinstance(g, int) and not isinstance(g, bool) for g in groups)
            and groups[0] == 0
            and groups[-1] == n_trees
            and all(a <= b for a, b in itertools.pairwise(groups))
        ):
            spec.fail(f"groups must be offsets from 0 to {n_trees} trees, found {groups}")
        self.groups: list[int] = groups
        self.n_outputs = (len(groups) - 1) * self.width
        if self.n_outputs > MAX_OUTPUTS:  # each prediction allocates rows x outputs
            spec.fail(f"{self.n_outputs} outputs is above {MAX_OUTPUTS}")
        base = spec.array("base", ndim=1, optional=True)
        spec.check(base is None or base.shape == (self.n_outputs,), "one base per output")
        divisor = spec.param("divisor", (int, float), 1)
        spec.check(divisor > 0, "divisor must be positive")
        # CatBoost adds its bias to the trees' sum; the others start the sum from their base
        base_last = spec.param("base_last", bool, False)
        spec.check(not base_last or divisor == 1, "base_last takes no divisor")
        self.bias = base if base_last else None
        base = None if base_last else base

        input_cast = spec.choice("input_cast", INPUT_CASTS, "float64")
        # scikit-learn's trees validate X cast to float32: a finite value it makes infinite,
        # or an infinity a step before handed on, is refused. Checked here, at the trees' own
        # input (after a pipeline's steps, inside a column transformer's output); a model whose
        # root is these trees checks it at its door instead (Model turns this off).
        self.check_range = spec.param("float32_range", bool, False)
        self.input_dtype = _CASTS[input_cast]
        work = _WORK.get((threshold.dtype, input_cast))
        if work is None:  # a threshold dtype the table lacks
            work = np.result_type(threshold.dtype, self.input_dtype)
        self.work_dtype = work
        self.dtype = threshold.dtype if leaf_values is None else leaf_values.dtype

        cat_column = spec.array("cat_column", ndim=1, kind="i", optional=True)
        if cat_column is not None:
            self.cat_offsets = spec.array("cat_offsets", ndim=1, kind="i")
            self.cat_words = spec.array("cat_words", ndim=1, kind="u")
            spec.check(len(self.cat_offsets) == len(cat_column) + 1, "cat_offsets: C + 1")
            self.cat_cast = spec.choice("category_cast", CATEGORY_CASTS)
        self.cat_column = cat_column
        encode_column = spec.array("encode_column", ndim=1, kind="i", optional=True)
        if encode_column is not None:
            self.encode_offsets = spec.array("encode_offsets", ndim=1, kind="i")
            self.encode_values = spec.array("encode_values", ndim=1, kind="f")
            spec.check(len(self.encode_offsets) == len(encode_column) + 1, "encode_offsets: E + 1")
        self.encode_column = encode_column
        self.zero_missing = spec.array("zero_missing", ndim=1, kind="i", optional=True)
        self.linear = LinearLeaves.from_spec(spec, leaf_values, self.n_features)

        self.feature, self.threshold, self.child, self.missing = feature, threshold, child, missing
        self.roots, self.leaf_values, self.base, self.divisor = roots, leaf_values, base, divisor
        level_offsets = spec.array("level_offsets", ndim=1, kind="i", optional=True)
        # A list of Python ints (one C call): checking and planning over a few dozen levels
        # this way costs a load far less than numpy's per-call overhead did in a fresh process.
        levels: list[int] | None = None if level_offsets is None else level_offsets.tolist()
        if not (
            levels is None
            or (
                len(levels) == self.depth + 2
                and levels[0] == 0
                and levels[-1] == n_nodes
                and all(a <= b for a, b in itertools.pairwise(levels))
            )
        ):
            spec.fail(
                f"level_offsets must rise from 0 to {n_nodes} nodes in {self.depth + 2} values"
            )
        self.table_levels, self.table_nodes = self._plan_one_row(levels)
        self.level_offsets = level_offsets
        self.compact: list[bool] | None = None  # planned at the first batch: loads stay light
        # The compiled sums (modelshelf/_kernels/trees.c), when built and given this layout;
        # linear leaves stay with numpy.
        self.kernel: Any = None
        if self.linear is None:
            self.kernel = _kernels.trees(
                feature, threshold, child, missing, roots, groups, leaf_values, base, self.depth,
                self.n_features, input_cast,
            )  # fmt: skip
        # Inputs need no more than a cast: the kernel's ``raw`` prepares them itself.
        self.plain = cat_column is None and encode_column is None and self.zero_missing is None
        # numpy's ``out /= divisor`` divides by the divisor in the outputs' dtype
        self.out_divisor = 1.0 if divisor == 1 else float(self.dtype.type(divisor))

    def _plan_compaction(self, level_offsets: np.ndarray) -> list[bool]:
        """Before which steps a batch drops its finished pairs: once a random walk (each side
        with probability 1/2) would have finished half the pairs still walking at the last
        compaction, at most every other step. Level sizes give its expected survivors: the
        inner nodes of level k, weighted by 2**-k. (Forests of many small trees, XGBoost's,
        shed most pairs in the first levels: measured 1.6x faster on 1000 rows than a
        compaction every four steps; others within noise.)"""
        inner = np.diff(level_offsets[1:]) / 2  # level k's inner nodes: half of level k + 1
        alive = (inner * 0.5 ** np.arange(len(inner))).tolist()
        plan, last, since = [], float(len(self.roots)), 0
        for expected in alive:
            since += 1
            drop = expected <= _COMPACT_LEFT * last and since >= 2
            if drop:
                last, since = expected, 0
            plan.append(drop)
        return plan

    def _plan_one_row(self, level_offsets: list[int] | None) -> tuple[int, int]:
        """How many levels of one row to walk by table (and over how many nodes), the rest by
        levels: the cheapest by the cost model. Without ``level_offsets`` nothing says where
        levels end, so the table covers every node or none. (Python floats are the doubles
        numpy computed this in: the same plan, without numpy's per-call cost at load.)"""
        depth, n_nodes = self.depth, len(self.feature)
        if not depth:
            return 0, 0
        step_saved = _WALK_STEP + _WALK_PAIR * len(self.roots) - _TABLE_STEP  # per table level
        if level_offsets is None:
            gain = step_saved * depth - _TABLE_FIXED - _TABLE_NODE * n_nodes
            return (depth, n_nodes) if gain > 0 else (0, 0)
        nodes = level_offsets[1 : depth + 1]  # a table of L levels covers nodes[L - 1] nodes
        cost = [n * _TABLE_NODE - level * step_saved for level, n in enumerate(nodes, 1)]
        best = cost.index(min(cost))  # the first of equal costs, as argmin took
        return (best + 1, nodes[best]) if cost[best] + _TABLE_FIXED < 0 else (0, 0)

    # -- the public kernel -------------------------------------------------------------------

    def raw(self, X: np.ndarray, *, divide: bool = True) -> np.ndarray:
        """Per-group sums of leaf outputs plus base, over ``divisor`` if ``divide``: shape
        (n, n_outputs). (LightGBM's random forests report raw scores undivided.)"""
        if X.shape[1] != self.n_features:
            raise FeatureCountError(
                f"the model expects {self.n_features} features per sample, got {X.shape[1]}"
            )
        if self.check_range:
            self._check_range(X)
        n = X.shape[0]
        kernel = self.kernel
        if kernel is not None and self.plain:
            # The same sums, compiled, inputs cast and divided there too (numpy's astype and /).
            out = np.empty((n, self.n_outputs), dtype=self.dtype)
            try:
                kernel.raw(X, out, self.out_divisor if divide else 1.0, _kernels.get_threads())
                if self.bias is not None:
                    out += self.bias
                return out
            except IndexError as exc:
                raise ManifestError(f"tree arrays hold out-of-range indices: {exc}") from exc
            except TypeError:  # not C-contiguous float32 or float64: the working matrix below
                pass
        rows = max(1, _BLOCK // len(self.roots))
        try:
            if kernel is not None:  # compiled sums of a working matrix (blocks bound its size)
                out = np.empty((n, self.n_outputs), dtype=self.dtype)
                threads = _kernels.get_threads()
                for start in range(0, n, _KERNEL_BLOCK):
                    stop = start + _KERNEL_BLOCK
                    kernel.sum(self.prepare(X[start:stop]), out[start:stop], threads)
            elif n <= rows:  # one block (single rows above all): no copy into ``out``
                out = self._sum(self.leaves(self.prepare(X)), X)
            else:
                out = np.empty((n, self.n_outputs), dtype=self.dtype)
                for start in range(0, n, rows):
                    block = X[start : start + rows]
                    leaves = self.leaves(self.prepare(block))
                    out[start : start + len(block)] = self._sum(leaves, block)
        except IndexError as exc:  # numpy bounds-checks every gather, the kernel every index
            raise ManifestError(f"tree arrays hold out-of-range indices: {exc}") from exc
        if divide and self.divisor != 1:
            out /= self.divisor
        if self.bias is not None:
            out += self.bias
        return out

    @staticmethod
    def _check_range(X: np.ndarray) -> None:
        """Refuse a value float32 makes infinite (the common case in one compiled scan)."""
        ready = _kernels.float_input() or ready_float64
        if X.dtype != np.float64 or ready(X, -1, True, True) is None:
            check_float32_range(X, nested=True)

    def prepare(self, X: np.ndarray) -> np.ndarray:
        """The working matrix: X cast, categories encoded, sentinel and category columns."""
        n, d = X.shape
        n_cat = 0 if self.cat_column is None else len(self.cat_column)
        W = np.empty((n, d + 1 + n_cat), dtype=self.work_dtype)
        with np.errstate(over="ignore"):  # float32 rounding of huge values gives inf, as in C
            W[:, :d] = X if self.input_dtype == self.work_dtype else X.astype(self.input_dtype)
        W[:, d] = -np.inf
        # Encoded, categorical and zero-missing columns index the input columns only: never the
        # sentinel, nor a category column not yet written (np.empty's leftovers).
        inputs = W[:, :d]
        if self.encode_column is not None:
            self._encode(inputs)
        if self.cat_column is not None:
            W[:, d + 1 :] = self._categories(inputs[:, self.cat_column])
        if self.zero_missing is not None:
            for column in self.zero_missing.tolist():
                values = inputs[:, column]
                values[np.abs(values) <= LIGHTGBM_ZERO] = np.nan
        return W

    def leaves(self, W: np.ndarray) -> np.ndarray:
        """Leaf node reached in every tree by every row: shape (n_trees * n,), tree-major."""
        roots, feature, threshold, child = self.roots, self.feature, self.threshold, self.child
        missing, depth, steps, compact = self.missing, self.depth, self.table_levels, self.compact
        if len(W) != 1:
            if compact is None and self.level_offsets is not None:
                compact = self.compact = self._plan_compaction(self.level_offsets)
            return walk_levels(W, roots, feature, threshold, child, missing, depth, None, compact)
        if not steps:  # one row: compacting every few steps mostly ends the walk early
            return walk_levels(W, roots, feature, threshold, child, missing, depth)
        prefix = slice(0, self.table_nodes)  # the nodes of the first ``steps`` levels
        node = walk_table(
            W[0], roots, feature[prefix], threshold[prefix], child[prefix], missing, steps
        )
        if steps == depth:
            return node
        return walk_levels(W, roots, feature, threshold, child, missing, depth - steps, node)

    # -- pieces ------------------------------------------------------------------------------

    def _sum(self, leaves: np.ndarray, X: np.ndarray) -> np.ndarray:
        n = len(X)
        payload = self.threshold[leaves]
        if self.leaf_values is None:
            values = payload.reshape(len(self.roots), n, 1)
        else:
            with np.errstate(invalid="ignore"):
                rows = payload.astype(np.intp)
            found = self.leaf_values[rows]
            if self.linear is not None:
                found = self.linear.outputs(rows, X, found[:, 0])[:, None]
            values = found.reshape(len(self.roots), n, self.width)
        out = np.empty((n, self.n_outputs), dtype=self.dtype)
        w = self.width
        for g, (start, stop) in enumerate(itertools.pairwise(self.groups)):
            if self.base is None:
                terms = values[start:stop]
            else:
                terms = np.empty((stop - start + 1, n, w), self.dtype)
                terms[0] = self.base[g * w : (g + 1) * w]
                terms[1:] = values[start:stop]
            if not len(terms):
                out[:, g * w : (g + 1) * w] = 0
            elif n * w > 1:
                # Reducing over the leading axis adds tree after tree, element by element, like
                # the libraries' loops (tests/unit/runtime/test_trees.py checks it to the bit).
                out[:, g * w : (g + 1) * w] = np.add.reduce(terms, axis=0)
            else:
                # One value per tree: a plain reduction would sum pairwise, which rounds
                # differently; prefix sums add in order.
                out[:, g * w : (g + 1) * w] = np.add.accumulate(terms, axis=0)[-1]
        return out

    def _encode(self, W: np.ndarray) -> None:
        """Replace raw categories by their index among the known ones; unknown become NaN."""
        assert self.encode_column is not None
        bounds = self.encode_offsets.tolist()
        for j, column in enumerate(self.encode_column.tolist()):
            known = self.encode_values[bounds[j] : bounds[j + 1]]
            values = W[:, column]
            if not len(known):
                values[:] = np.nan
                continue
            pos = np.searchsorted(known, values)
            hit = known[np.minimum(pos, len(known) - 1)] == values
            W[:, column] = np.where(hit, pos, np.nan)

    def _categories(self, V: np.ndarray) -> np.ndarray:
        """1.0 where a value's category is in its split's bitset, 0.0 where not, NaN if NaN."""
        lo = self.cat_offsets[:-1].astype(np.intp)
        n_bits = (self.cat_offsets[1:] - self.cat_offsets[:-1]).astype(np.float64) * 32
        nan = np.isnan(V)
        cast: Callable[[Any], Any] = np.floor if self.cat_cast == "floor" else np.trunc
        code = cast(np.where(nan, -1.0, V))
        valid = (code >= 0) & (code < n_bits)
        code = np.where(valid, code, 0).astype(np.intp)
        words = self.cat_words[lo + (code >> 5)]
        inside = (words >> (code & 31).astype(words.dtype)) & 1
        out = np.where(valid, inside, 0).astype(self.work_dtype)
        out[nan] = np.nan
        return out


def _count(spec: Spec, key: str) -> int:
    value: int = spec.param(key, int)
    if not (value >= 0):
        spec.fail(f"parameter {key!r} must be >= 0, found {value}")
    return value
