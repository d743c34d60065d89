"""Composition: Pipeline and ColumnTransformer.

Both reproduce where scikit-learn checks for missing values. A pipeline validates each step's
input, so NaN that one step lets through (a scaler) is rejected by the next step that does not
accept it; a column transformer does not validate its input at all, so NaN may sit in columns
it drops or passes through, and only the transformers given NaN-rejecting columns raise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..errors import InputTypeError, ManifestError, NonFiniteInputError, UnknownCategoryError
from ._base import Executor, Spec, build, computes_float32, register
from ._input import as_numbers, cast_order, check_finite
from ._sparse import DENSE_CHUNK_CELLS, CSRMatrix, concat_rows, dense_chunks, hstack
from .encoders import _Encoder
from .preprocessing import check_width

_TRANSFORM = frozenset({"transform"})
STACKS = ("dense", "sparse", "sparse_if_any")  # how a column transformer joins its parts
# A sparse row made dense for a step that needs it: 2**24 float64 values are 128 MiB (a hashing
# vectorizer's default width is 2**20). An image asking for more would exhaust the client.
MAX_DENSE_COLUMNS = 1 << 24
# Input columns of a column transformer (a DataFrame's): its column masks are this wide.
MAX_COLUMNS = 1 << 24


@register
class Pipeline(Executor):
    """Transform through every step but the last, then call the last step's method.

    ``final="passthrough"`` marks a pipeline whose last step is 'passthrough' (or None): every
    step transforms and the pipeline only has transform, as in scikit-learn. Other
    'passthrough' steps are dropped at compile time.
    """

    kind = "pipeline"
    routes_float32 = True  # the first step gets the input; each next step what it is handed
    accepts_sparse = True  # each step gets sparse input only if it accepts it (see _run)

    def __init__(self, steps: list[Executor], final_passthrough: bool) -> None:
        self.steps = steps
        if final_passthrough:
            self.transformers, self.final = steps, None
            self.methods = _TRANSFORM
        else:
            self.transformers, self.final = steps[:-1], steps[-1]
            self.methods = self.final.methods
            self.classes_ = self.final.classes_
        # No step: scikit-learn validates nothing, NaN included.
        self.allow_nan = steps[0].allow_nan if steps else True
        self.accepts_objects = bool(steps) and getattr(steps[0], "accepts_objects", False)
        self.used_columns = getattr(steps[0], "used_columns", None) if steps else None
        self.na_refused = steps[0].na_refused if steps else None
        self.narrows_small = bool(steps) and steps[0].narrows_small
        self.product_casts = steps[0].product_casts if steps else ""
        self.float32_parts = steps[0].float32_parts if steps else ()
        # sparse input reaches the first step, and the steps after it while each step before
        # keeps it sparse (those that accept it: scaling, selection)
        for step in steps:
            if step.sparse_differs is not None:
                self.sparse_differs = step.sparse_differs
                break
            if not getattr(step, "accepts_sparse", False):
                break
        # float32 input stays float32 through the steps that keep it, as in scikit-learn; the
        # first step that computes in float64 gets it widened (what numpy's promotion of its
        # float64 arrays does there).
        # (a pipeline of no step hands its input back as it is: float32 stays float32)
        self.keeps_float32 = not steps or getattr(steps[0], "keeps_float32", False)
        self.widens_float16 = bool(steps) and getattr(steps[0], "widens_float16", False)
        self._widen_before = [not getattr(step, "keeps_float32", False) for step in steps]
        # in the layout numpy's matmul would cast it to, for a step whose product gets it
        self._widen_order = [cast_order(_FLOAT32, step.product_casts) for step in steps]
        self._final_fitted32 = self.final is not None and self.final.float32_fitted
        # float32 reaches the steps while they keep it: does any compute with it?
        self.float32_arithmetic = False
        for step in steps:
            if not getattr(step, "keeps_float32", False):
                break
            if computes_float32(step):
                self.float32_arithmetic = True
                break
        # A step that accepted NaN may hand it on; check before the next step that rejects it,
        # as that step's own validation would in scikit-learn. A step that rejected NaN got
        # finite input and gives finite output.
        self._check_before = [
            i > 0 and steps[i - 1].allow_nan and not step.allow_nan for i, step in enumerate(steps)
        ]
        # The transforming steps' bound methods, looked up once for every call's dense run.
        self._transforms = [
            (step.transform, self._check_before[i], self._widen_before[i], self._widen_order[i])  # type: ignore[attr-defined]
            for i, step in enumerate(self.transformers)
        ]

    @classmethod
    def from_spec(cls, spec: Spec) -> Pipeline:
        steps = spec.children("steps")
        final_passthrough = spec.choice("final", ("estimator", "passthrough"), "estimator")
        spec.check(final_passthrough == "passthrough" or len(steps) >= 1, "no final step")
        last = len(steps) if final_passthrough == "passthrough" else len(steps) - 1
        for i, step in enumerate(steps[:last]):
            spec.check(step.supports("transform"), f"step {i} ({step.kind}) cannot transform")
        return cls(steps, final_passthrough == "passthrough")

    def _run(self, method: str | None, X: Any, start: int = 0, given32: bool = False) -> Any:
        """Transform through the steps from ``start`` on, then call ``method`` of the final
        step (``method`` None: a final-passthrough pipeline, transform only).

        Sparse input (a text vectorizer's CSR) goes on sparse to the steps that declare
        ``accepts_sparse``; any other step gets it dense, in row chunks when the whole batch
        would be large (the rest of the pipeline then runs chunk by chunk).
        """
        if start == 0 and type(X) is np.ndarray:
            return self._run_dense(method, X)
        given32 = given32 or (start == 0 and getattr(X, "dtype", None) == _FLOAT32)
        for i in range(start, len(self.steps)):
            step = self.steps[i]
            if isinstance(X, CSRMatrix) and not getattr(step, "accepts_sparse", False):
                _check_densify(X, f"pipeline step {i} ({step.kind}) takes dense rows")
                if len(X) > 1 and X.shape[0] * X.shape[1] > DENSE_CHUNK_CELLS:
                    parts = dense_chunks(X)
                    return concat_rows([self._run(method, p, i, given32) for p in parts])
                X = X.toarray()
            if self._check_before[i]:
                check_finite(X.data if isinstance(X, CSRMatrix) else X, allow_nan=False)
            if self._widen_before[i]:
                X = widened(X, self._widen_order[i])
            if step is self.final and method is not None:
                if given32:
                    self._refuse_widened(X)
                return getattr(step, method)(X)
            X = step.transform(X)  # type: ignore[attr-defined]
        return X

    def _run_dense(self, method: str | None, X: np.ndarray) -> Any:
        """``_run`` for dense input, the common case, with the bound methods looked up at load;
        from the first step that gets anything but a dense array on, ``_run`` itself."""
        given32 = self._final_fitted32 and X.dtype is _FLOAT32
        for i, (transform, check, widen, order) in enumerate(self._transforms):
            if check:
                check_finite(X, allow_nan=False)
            if widen and X.dtype is _FLOAT32:  # inline: float64, the common case, costs a test
                X = X.astype(np.float64, order=order)
            X = transform(X)
            if type(X) is not np.ndarray:
                return self._run(method, X, i + 1, given32)
        if self.final is None:
            return X
        if self._check_before[-1]:
            check_finite(X, allow_nan=False)
        if self._widen_before[-1] and X.dtype is _FLOAT32:
            X = X.astype(np.float64, order=self._widen_order[-1])
        if given32:
            self._refuse_widened(X)
        return getattr(self.final, method or "transform")(X)

    def _refuse_widened(self, X: Any) -> None:
        """Float32 input reached the final step widened: scikit-learn's steps hand it float32
        there, and the final step, fitted on float32, computes it in float32."""
        if getattr(X, "dtype", None) != _FLOAT32 and self.final is not None:
            raise InputTypeError(
                f"float32 input: the final step ({self.final.kind}) was fitted on float32 "
                "and scikit-learn hands it float32 here, which a step before it does not in "
                "modelshelf: pass X.astype(np.float64) (answered as scikit-learn answers "
                "float64 input), or refit the model on float64 data"
            )

    def name_columns(self, names: list[str]) -> None:
        """Name the input columns in the first step's errors (see encoders.py)."""
        if self.steps and hasattr(self.steps[0], "name_columns"):
            self.steps[0].name_columns(names)

    def _through(self, X: np.ndarray) -> np.ndarray:
        return self._run(None, X)

    def _final(self, method: str, X: np.ndarray) -> np.ndarray:
        return self._run(method, X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self._final("predict", X)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self._final("predict_proba", X)

    def predict_log_proba(self, X: np.ndarray) -> np.ndarray:
        return self._final("predict_log_proba", X)

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return self._final("decision_function", X)

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        return self._final("score_samples", X)

    def transform(self, X: np.ndarray) -> np.ndarray:
        if self.final is not None:
            return self._final("transform", X)
        if not self.transformers:
            return X.copy()  # never hand the caller's own array back as the result
        return self._through(X)


@dataclass(frozen=True)
class _Part:
    """One transformer of a column transformer, with the input columns it takes."""

    name: str
    columns: np.ndarray | slice | int  # a slice for a contiguous run; an int: one 1-D column
    indices: np.ndarray
    transformer: Executor | None  # None: passthrough
    weight: float | None
    check_nan: bool
    takes_objects: bool  # strings reach the transformer as they are (encoders)


@register
class ColumnTransformer(Executor):
    """Apply each part's transformer to its columns and stack the results side by side.

    ``parts`` lists ``{"name", "transformer" (a spec, or null for passthrough), "weight"
    (null: none)}``; part ``i`` takes the input columns in array ``columns_<i>``. Dropped
    transformers and empty column selections are left out at compile time.

    Input may be a 2-D object array (a DataFrame mixing strings and numbers): parts whose
    transformer takes strings (encoders) get their columns as they are, every other part gets
    them as float64, checked as a numeric model's input is.

    ``stack`` says how the outputs are put side by side, as scikit-learn does: "dense" (sparse
    parts made dense), "sparse" (a ColumnTransformer whose ``sparse_output_`` was set at fit)
    or "sparse_if_any" (a FeatureUnion: sparse when some part's output is).
    """

    kind = "column_transformer"
    routes_float32 = True  # each part gets its columns widened unless it keeps float32
    methods = _TRANSFORM
    accepts_objects = True
    # float32 columns reach the parts that keep float32 as they are (the others get float64)
    # and are passed through as they are: the stack's dtype is numpy's promotion of the parts'.
    keeps_float32 = True
    #: the input columns some part reads: a DataFrame needs only these, by name.
    used_columns: np.ndarray | None = None

    def __init__(self, n_features: int, parts: list[_Part], stack: str = "dense") -> None:
        self.n_features = n_features
        self.parts = parts
        self.stack = stack

    @classmethod
    def from_spec(cls, spec: Spec) -> ColumnTransformer:
        n = spec.count("n_features", most=MAX_COLUMNS)
        raw_parts = spec.param("parts", list)
        built: list[tuple[str, np.ndarray, Executor | None, float | None, bool]] = []
        for i, raw in enumerate(raw_parts):
            spec.check(isinstance(raw, dict), f"parts[{i}] must be an object")
            name = raw.get("name")
            weight = raw.get("weight")
            spec.check(isinstance(name, str), f"parts[{i}].name must be a string")
            spec.check(
                weight is None
                or (isinstance(weight, int | float) and not isinstance(weight, bool)),
                f"parts[{i}].weight must be a number or null",
            )
            cols = spec.array(f"columns_{i}", ndim=1, kind="iu")
            spec.check(
                cols.size > 0 and int(cols.min()) >= 0 and int(cols.max()) < n,
                f"parts[{i}] must select columns in [0, {n})",
            )
            one_column = raw.get("one_column", False)
            spec.check(
                isinstance(one_column, bool) and (not one_column or cols.size == 1),
                f"parts[{i}].one_column must be a boolean, true for one column only",
            )
            raw_child = raw.get("transformer")
            spec.check(
                not one_column or raw_child is not None,
                f"parts[{i}]: a single column (one_column) needs a transformer",
            )
            child = None
            if raw_child is not None:
                child = build(raw_child, spec.arrays, f"{spec.path}.parts[{i}].transformer")
                spec.built.append(child)
                spec.check(
                    child.supports("transform"), f"parts[{i}] ({child.kind}) cannot transform"
                )
                if isinstance(child, _Encoder):  # name the columns as the caller sees them
                    child.input_columns = cols
            built.append((name, cols, child, None if weight is None else float(weight), one_column))
        # NaN is acceptable in a column unless every part that takes it rejects NaN.
        taken = np.zeros(n, dtype=bool)
        accepting = np.zeros(n, dtype=bool)
        for _, cols, child, _, one_column in built:
            taken[cols] = True
            if child is None or child.allow_nan or one_column:  # documents: the child says
                accepting[cols] = True
        allow_nan = bool((accepting | ~taken).any())
        parts = [
            _Part(
                name,
                # one column: X[:, c], the 1-D column of documents scikit-learn hands a
                # text vectorizer, which checks each one itself
                int(cols[0]) if one_column else _as_slice(cols),
                cols,
                child,
                weight,
                check_nan=allow_nan
                and child is not None
                and not child.allow_nan
                and not one_column,
                takes_objects=one_column or getattr(child, "accepts_objects", False),
            )
            for name, cols, child, weight, one_column in built
        ]
        out = cls(n, parts, spec.choice("stack", STACKS, "dense"))
        out.allow_nan = allow_nan
        out.used_columns = taken
        out.float32_arithmetic = any(
            p.transformer is not None and computes_float32(p.transformer) for p in parts
        )
        # parts that compute float32 input in float32 (or are marked as answering it
        # otherwise): scikit-learn gives each its own columns, float32 if all of them are
        out.float32_parts = tuple(
            (p.name, p.indices)
            for p in parts
            if p.transformer is not None
            and (computes_float32(p.transformer) or p.transformer.float32_differs is not None)
        )
        pandas_output = spec.param("pandas_output", bool, False)
        if out.stack != "sparse_if_any" and not pandas_output:  # not a FeatureUnion's stack
            passed = sorted({int(c) for p in parts if p.transformer is None for c in p.indices})
            out.na_refused = tuple(passed) or None
        # each part gets its columns of a sparse batch sparse, as scikit-learn slices them
        out.sparse_differs = next(
            (p.transformer.sparse_differs for p in parts if p.transformer is not None
             and p.transformer.sparse_differs is not None),
            None,
        )  # fmt: skip
        return out

    def name_columns(self, names: list[str]) -> None:
        """Name each part's columns in its errors (see encoders.py)."""
        if len(names) != self.n_features:
            return
        for part in self.parts:
            name_columns = getattr(part.transformer, "name_columns", None)
            if name_columns is not None:
                name_columns([names[int(c)] for c in part.indices])

    def transform(self, X: np.ndarray) -> np.ndarray | CSRMatrix:
        check_width(X, self.n_features, "this column transformer")
        outputs = []
        mixed = X.dtype.kind == "O"
        for part in self.parts:
            Xp = X[:, part.columns]
            if mixed and not part.takes_objects:
                Xp = _numeric(part, Xp)
            Y = Xp if part.transformer is None else _apply(part, Xp)
            if part.weight is not None and isinstance(Y, CSRMatrix):
                Y = Y.with_data(Y.data * part.weight)
            elif part.weight is not None:
                Y = Y * part.weight
            outputs.append(Y)
        if not outputs:
            return np.zeros((len(X), 0))
        sparse = [isinstance(Y, CSRMatrix) for Y in outputs]
        if self.stack == "sparse" or (self.stack == "sparse_if_any" and any(sparse)):
            return hstack(outputs)
        if any(sparse):
            for Y, part in zip(outputs, self.parts, strict=True):
                if isinstance(Y, CSRMatrix):
                    _check_densify(Y, f"column transformer part {part.name!r} is stacked dense")
            outputs = [Y.toarray() if isinstance(Y, CSRMatrix) else Y for Y in outputs]
        return np.hstack(outputs)  # always a new array, even for a single passthrough part


_FLOAT32 = np.dtype(np.float32)  # native float32: the one dtype object (what the door keeps)


def widened(X: Any, order: Literal["C", "K"] = "K") -> Any:
    """``X`` in float64 if it came through in float32, for a step that computes in float64
    (what numpy's promotion against that step's float64 arrays does in scikit-learn), in
    ``order`` (``cast_order``)."""
    if getattr(X, "dtype", None) != np.float32:
        return X
    if isinstance(X, CSRMatrix):
        return X.with_data(X.data.astype(np.float64))
    return np.asarray(X, dtype=np.float64, order=order)


def _check_densify(X: CSRMatrix, why: str) -> None:
    """Refuse to make rows of more than MAX_DENSE_COLUMNS values dense (ManifestError)."""
    if X.shape[1] > MAX_DENSE_COLUMNS:
        raise ManifestError(
            f"{why}, and its sparse input has {X.shape[1]:,} columns "
            f"({X.shape[1] * X.dtype.itemsize / 2**30:.1f} GiB a row); modelshelf makes rows "
            f"of at most {MAX_DENSE_COLUMNS:,} columns dense"
        )


def _numeric(part: _Part, Xp: np.ndarray) -> np.ndarray:
    """A part's columns of a mixed input as float64, as a numeric model's input is checked:
    only NaN-accepting parts (and passthrough) let NaN in."""
    allow_nan = part.transformer is None or part.transformer.allow_nan
    columns = _shorten([int(c) for c in part.indices[:9]], len(part.indices))
    why = (
        "modelshelf passes columns through as numbers only: encode or drop strings"
        if part.transformer is None
        else f"its {part.transformer.kind} was fitted on numbers"
    )
    return as_numbers(Xp, f"transformer {part.name!r} (input columns {columns})", allow_nan, why)


def _apply(part: _Part, Xp: np.ndarray) -> np.ndarray:
    """The part's transform, its errors naming the columns of the whole input they concern."""
    try:
        if part.check_nan:
            check_finite(Xp, allow_nan=False)
        if not getattr(part.transformer, "keeps_float32", False):
            Xp = widened(Xp)
        return part.transformer.transform(Xp)  # type: ignore[union-attr]
    except (NonFiniteInputError, InputTypeError) as exc:  # NaN, a text column's documents...
        columns = _shorten([int(c) for c in part.indices[:9]], len(part.indices))
        raise type(exc)(f"transformer {part.name!r} (input columns {columns}): {exc}") from exc
    except UnknownCategoryError as exc:
        raise UnknownCategoryError(f"transformer {part.name!r}: {exc}") from exc


def _as_slice(cols: np.ndarray) -> np.ndarray | slice:
    """A slice for a contiguous ascending run of columns (a view, no gather), else the array."""
    first, last = int(cols[0]), int(cols[-1])
    if last - first + 1 == len(cols) and bool(np.all(np.diff(cols.astype(np.int64)) == 1)):
        return slice(first, last + 1)
    return cols


def _shorten(first: list[int], total: int) -> str:
    return str(first) if total <= 8 else f"[{', '.join(map(str, first[:8]))}, ... ({total})]"
