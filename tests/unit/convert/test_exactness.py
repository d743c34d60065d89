"""The exactness matrix: every supported estimator and option against scikit-learn itself.

Labels must be identical; probabilities, decision values, regression outputs and transforms
must agree within each case's tolerance (1e-9 relative, 1e-6 where the model is float32).
Methods the estimator lacks must be absent from the Model too. Inputs may be numeric arrays or
lists of documents (text cases); sparse results are compared densified, after their dtypes.

Every case runs on the numpy runtime; tree, text, linear-model and MLP cases run again on the
compiled kernels (``-compiled`` ids), which must also give the numpy runtime's results to the
last bit (dense models on the whole input and on small batches of it too).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import modelshelf
from modelshelf.runtime import METHODS
from modelshelf.runtime.linear import LinearClassifier, LinearRegressor
from modelshelf.runtime.neural import MLPClassifier, MLPRegressor
from modelshelf.runtime.text import _Vectorizer
from modelshelf.runtime.trees_forest import Forest
from tests.cases import CASES, Case, catboost, linear, neural, text, trees
from tests.kernels import same_bits, using

# Cases whose models walk trees (outside trees.py and catboost.py: ensembles, meta-estimators
# and pipelines holding trees, by their ids).
TREE_WORDS = ("tree", "forest", "hgb", "adaboost", "boost", "xgb", "lgbm")
TREE_CASES = {c.id for c in (*trees.CASES, *catboost.CASES)} | {
    c.id for c in CASES if any(word in c.id for word in TREE_WORDS)
}
# Cases whose models count text: the vectorizers and pipelines from documents (a lone
# TfidfTransformer takes counts, not documents).
TEXT_CASES = {c.id for c in text.CASES if "tfidf-transformer" not in c.id}
# Cases whose models hold linear models or MLPs (alone, in pipelines or meta-estimators).
DENSE_KINDS = (LinearClassifier, LinearRegressor, MLPClassifier, MLPRegressor)
DENSE_WORDS = ("logreg", "mlp", "ridge", "sgd", "lasso", "elasticnet", "svc", "svr", "linreg")
DENSE_CASES = {c.id for c in (*linear.CASES, *neural.CASES)} | {
    c.id for c in CASES if any(word in c.id for word in DENSE_WORDS)
}
COMPILED_CASES = TREE_CASES | TEXT_CASES | DENSE_CASES
#: the small batches a dense case compares too (one row: the column blocks, a gemv)
SMALL = (1, 2, 7)
PARAMS = [pytest.param(c, "numpy", id=c.id) for c in CASES] + [
    pytest.param(c, "compiled", id=f"{c.id}-compiled") for c in CASES if c.id in COMPILED_CASES
]


def _sk_has(est: object, method: str) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return hasattr(est, method)


def forests(obj: object) -> list[Forest]:
    """Every ``Forest`` reachable from a Model's executors."""
    return [f for f in reachable(obj, (Forest,)) if isinstance(f, Forest)]


def vectorizers(obj: object) -> list[_Vectorizer]:
    """Every text vectorizer (count or hashing) reachable from a Model's executors."""
    return [v for v in reachable(obj, (_Vectorizer,)) if isinstance(v, _Vectorizer)]


def dense_executors(obj: object) -> list[object]:
    """Every linear model and MLP reachable from a Model's executors."""
    return reachable(obj, DENSE_KINDS)


def reachable(obj: object, kinds: tuple[type, ...], seen: set[int] | None = None) -> list[object]:
    """Every object of one of ``kinds`` reachable from a Model's executors."""
    seen = set() if seen is None else seen
    if id(obj) in seen or not type(obj).__module__.startswith(("modelshelf", "builtins")):
        return []
    seen.add(id(obj))
    if isinstance(obj, kinds):
        return [obj]
    if isinstance(obj, dict):
        children: list[object] = list(obj.values())
    elif isinstance(obj, list | tuple):
        children = list(obj)
    else:
        children = list(getattr(obj, "__dict__", {}).values())
        for cls in type(obj).__mro__:
            children += [getattr(obj, s) for s in getattr(cls, "__slots__", ()) if hasattr(obj, s)]
    return [f for child in children for f in reachable(child, kinds, seen)]


@pytest.mark.parametrize(("case", "kernel"), PARAMS)
def test_matches_scikit_learn(case: Case, kernel: str) -> None:
    est, X = case.fit()
    image = modelshelf.compile(est)
    with using(kernel):
        model = modelshelf.load(image, verify=True)
    reference = None
    if kernel == "compiled":
        # every forest the kernel can take is compiled (linear leaves stay with numpy; XGBoost's
        # gblinear cases have none)
        assert all(f.kernel is not None for f in forests(model) if f.linear is None)
        # and every vectorizer counts through the compiled lookup or hashing
        assert all(v.kernel is not None for v in vectorizers(model))
        if case.id in TEXT_CASES:
            assert vectorizers(model), "a text case without a vectorizer"
        # and every linear model and MLP whose arrays are float64 (as scikit-learn fits them)
        for executor in dense_executors(model):
            arrays = [a for layer in getattr(executor, "layers", []) for a in layer] or [
                executor.coef,  # type: ignore[attr-defined]
                executor.intercept,  # type: ignore[attr-defined]
            ]
            if all(a.dtype == np.float64 for a in arrays):
                assert executor.kernel is not None, type(executor).__name__  # type: ignore[attr-defined]
        with using("numpy"):
            reference = modelshelf.load(image)
    compared = 0
    for method in METHODS:
        if not _sk_has(est, method):
            assert not hasattr(model, method), f"Model has {method}() but the estimator does not"
            continue
        assert hasattr(model, method), f"estimator has {method}() but the Model does not"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = getattr(est, method)(X)
        actual = getattr(model, method)(X)
        if reference is not None:
            numpy_path = getattr(reference, method)(X)
            assert same_bits(actual, numpy_path), f"{method}: compiled != numpy, bit for bit"
            if case.id in DENSE_CASES and not isinstance(X, list):
                for n in SMALL:
                    small = getattr(model, method)(X[:n])
                    expected_small = getattr(reference, method)(X[:n])
                    assert same_bits(small, expected_small), (
                        f"{method}({n} rows): compiled != numpy"
                    )
        if isinstance(expected, list):  # multi-output predict_proba: one array per output
            assert isinstance(actual, list) and len(actual) == len(expected), method
            for a, e in zip(actual, expected, strict=True):
                np.testing.assert_allclose(a, e, rtol=case.rtol, atol=case.atol)
            compared += 1
            continue
        if hasattr(actual, "toarray"):  # sparse output (text vectorizers): same dtype, densified
            assert hasattr(expected, "toarray"), f"{method}: sparse result where sklearn is dense"
            assert actual.dtype == expected.dtype, (method, actual.dtype, expected.dtype)
            actual = actual.toarray()
        if hasattr(expected, "toarray"):
            expected = expected.toarray()
        expected = np.asarray(expected)
        assert actual.shape == expected.shape, method
        if method == "predict" and (
            expected.dtype.kind not in "f" or getattr(est, "_estimator_type", "") == "classifier"
        ):
            assert np.array_equal(actual, expected), f"{method}: labels differ"
            assert actual.dtype.kind == expected.dtype.kind, (actual.dtype, expected.dtype)
        else:
            np.testing.assert_allclose(actual, expected, rtol=case.rtol, atol=case.atol)
        compared += 1
    assert compared > 0
    # TargetEncoder's classes_ is None for a continuous target, CatBoostRegressor's is empty
    if getattr(est, "classes_", None) is not None and len(est.classes_):
        assert np.array_equal(model.classes_, est.classes_)
    if hasattr(est, "n_features_in_"):
        assert model.n_features_in_ == est.n_features_in_
