"""scikit-learn's own universe: every class of ``sklearn.utils.all_estimators()``, built as
scikit-learn's test suite builds it (its instance generator), fitted on data its tags ask for,
then compiled. A supported class must predict exactly what scikit-learn predicts; any other
must be refused with a clear ``UnsupportedModelError``.

``survey()`` returns one ``Row`` per class; tests/unit/convert/test_coverage.py checks the rows
and that docs/models.md, generated from them, is current:

    python -m tests.universe > docs/models.md
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

import modelshelf
from modelshelf.errors import UnsupportedModelError
from modelshelf.runtime import METHODS

RTOL, ATOL = 1e-9, 1e-12

EXACT = "exact"
REFUSED = "refused"
NOT_APPLICABLE = "n/a"  # no method that takes new data (fit_predict or fit_transform only)
MISMATCH = "mismatch"  # compiled, but predicts otherwise: a defect
ERROR = "error"  # compile or predict raised something other than a refusal: a defect
UNFITTED = "not fitted"  # the generic data here does not suit it: said, never hidden


@dataclass(frozen=True)
class Row:
    """What modelshelf does with one scikit-learn class."""

    name: str
    module: str
    methods: tuple[str, ...]
    status: str
    reason: str = ""


def survey() -> list[Row]:
    # the experimental classes count too, whether or not another module enabled them first
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401
    from sklearn.utils import all_estimators

    return [_row(name, cls) for name, cls in all_estimators()]


def _row(name: str, cls: type) -> Row:
    module = cls.__module__.split("._")[0]
    methods = tuple(m for m in METHODS if hasattr(cls, m))
    if not methods:
        return Row(name, module, methods, NOT_APPLICABLE, "no method takes new data")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            est = _instance(cls)
            _, X_test = _fit(est)
        except Exception as exc:  # the generic data does not suit it: say so
            return Row(name, module, methods, UNFITTED, _first_line(exc))
        methods = tuple(m for m in METHODS if hasattr(est, m))
        try:
            image = modelshelf.compile(est)
        except UnsupportedModelError as exc:
            return Row(name, module, methods, REFUSED, _first_line(exc))
        except Exception as exc:
            return Row(name, module, methods, ERROR, f"compile: {type(exc).__name__}: {exc}")
        try:
            model = modelshelf.load(image)
            for method in methods:
                _compare(method, est, model, X_test)
        except AssertionError as exc:
            return Row(name, module, methods, MISMATCH, _first_line(exc))
        except Exception as exc:
            return Row(name, module, methods, ERROR, f"predict: {type(exc).__name__}: {exc}")
    return Row(name, module, methods, EXACT)


def _instance(cls: type) -> Any:
    from sklearn.utils._test_common.instance_generator import _construct_instances

    return next(iter(_construct_instances(cls)))


def _fit(est: Any) -> tuple[Any, Any]:
    """Fit ``est`` on data that suits its tags; (X_train, X_test)."""
    from sklearn.utils import get_tags

    tags = get_tags(est)
    rng = np.random.default_rng(0)
    n, d = 120, 6
    dictionary = getattr(est, "dictionary", None)  # SparseCoder: X must match its atoms
    if dictionary is not None:
        d = np.shape(dictionary)[1]
    X = rng.normal(size=(n + 40, d))
    if tags.input_tags.positive_only or tags.target_tags.positive_only:
        X = np.abs(X)
    labels = np.argmax(X[:, :3] + rng.normal(scale=0.5, size=(n + 40, 3)), axis=1)
    if not tags.input_tags.two_d_array and (tags.input_tags.string or tags.input_tags.dict):
        return _fit_other(est, tags, labels)  # documents, dicts
    if tags.target_tags.one_d_labels or tags.target_tags.two_d_labels:
        return _fit_other(est, tags, labels)
    target = X[:, 0] * 2.0 + np.abs(X[:, 1]) + rng.normal(scale=0.1, size=len(X))
    if tags.input_tags.allow_nan:  # imputers, indicators, trees: missing values as well
        X[rng.random(X.shape) < 0.1] = np.nan
    if tags.input_tags.pairwise:  # a precomputed kernel: rows against the training rows
        X = np.vstack([X[:n] @ X[:n].T, X[n:] @ X[:n].T])
    if not tags.input_tags.two_d_array:  # IsotonicRegression: one feature, 1-D
        X = X[:, 0]
    y: Any = labels  # unsupervised transformers ignore it; selectors and LDA need it
    kind = tags.estimator_type
    if kind == "classifier":
        if tags.classifier_tags is not None and not tags.classifier_tags.multi_class:
            y = (labels > 0).astype(np.int64)
        if tags.target_tags.multi_output and not tags.target_tags.single_output:
            y = np.column_stack([labels, (labels + 1) % 3])
    elif kind == "regressor":
        y = np.abs(target) + 0.1 if tags.target_tags.positive_only else target
        if tags.target_tags.multi_output and not tags.target_tags.single_output:
            y = np.column_stack([y, -y])
    if kind in ("clusterer", "density_estimator", "outlier_detector"):
        est.fit(X[:n])
    else:
        est.fit(X[:n], y[:n])
    return X[:n], X[n:]


def _fit_other(est: Any, tags: Any, labels: np.ndarray) -> tuple[Any, Any]:
    """Text, dict and label inputs."""
    words = np.array(["ant", "bee", "cat", "dog", "eel", "fox", "gnu", "hen"])
    rng = np.random.default_rng(1)
    if tags.input_tags.string:
        docs = [" ".join(rng.choice(words, size=5)) for _ in range(len(labels))]
        est.fit(docs[:120], labels[:120]) if tags.target_tags.required else est.fit(docs[:120])
        return docs[:120], docs[120:]
    if tags.input_tags.dict:
        rows = [{str(w): float(rng.integers(1, 4)) for w in rng.choice(words, 3)} for _ in labels]
        est.fit(rows[:120])
        return rows[:120], rows[120:]
    if tags.target_tags.two_d_labels:
        sets = [set(rng.choice(words, size=2).tolist()) for _ in labels]
        est.fit(sets[:120])
        return sets[:120], sets[120:]
    est.fit(labels[:120])
    return labels[:120], labels[120:]


def _compare(method: str, est: Any, model: Any, X: Any) -> None:
    """Same answer, or both refuse the input (RadiusNeighbors without neighbours, ...)."""
    try:
        expected = getattr(est, method)(X)
    except ValueError as exc:
        try:
            getattr(model, method)(X)
        except ValueError:
            return
        raise AssertionError(
            f"{method}: scikit-learn refuses this input ({exc}), the image not"
        ) from exc
    _same(method, expected, getattr(model, method)(X))


def _same(method: str, expected: Any, actual: Any) -> None:
    if hasattr(expected, "toarray"):
        expected = expected.toarray()
    if hasattr(actual, "toarray"):
        actual = actual.toarray()
    expected, actual = np.asarray(expected), np.asarray(actual)
    assert actual.shape == expected.shape, f"{method}: shape {actual.shape} != {expected.shape}"
    if expected.dtype.kind in "fc":
        np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL, err_msg=method)
    else:
        assert np.array_equal(actual, expected), f"{method}: values differ"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def table(rows: list[Row]) -> Iterator[str]:
    """docs/models.md."""
    counts = {
        s: sum(r.status == s for r in rows) for s in (EXACT, REFUSED, UNFITTED, NOT_APPLICABLE)
    }
    with_methods = sum(r.status != NOT_APPLICABLE for r in rows)
    yield "# Models: scikit-learn's own list"
    yield ""
    yield from (
        "Generated by `python -m tests.universe > docs/models.md` from",
        "`sklearn.utils.all_estimators()`, each class built by scikit-learn's own test instance",
        "generator and fitted on data its tags ask for (`tests/universe.py`);",
        "`tests/unit/convert/test_coverage.py` checks that every exact class predicts what",
        "scikit-learn predicts (rtol 1e-9), that every other one is refused with a clear error,",
        "and that this page is current. XGBoost, LightGBM and CatBoost are covered by the",
        "exactness matrix (`tests/cases/`), not listed here.",
    )
    yield ""
    yield (
        f"Of {len(rows)} classes, {with_methods} predict or transform new data: **{counts[EXACT]} "
        f"compile and are exact**, {counts[REFUSED]} are refused with the reason below, "
        f"{counts[UNFITTED]} could not be fitted on this survey's generic data."
    )
    yield ""
    yield "| class | module | methods | status | reason |"
    yield "| --- | --- | --- | --- | --- |"
    for r in rows:
        reason = r.reason[:300].replace("|", "\\|").replace("\n", " ")
        methods = ", ".join(r.methods) or "—"
        yield f"| `{r.name}` | `{r.module}` | {methods} | {r.status} | {reason} |"


if __name__ == "__main__":
    sys.stdout.write("\n".join(table(survey())) + "\n")
