"""Tree converters beyond the exactness matrix: inputs exactly at thresholds, multi-output
classifiers, NaN policy, unsupported options, image size against the essential node data,
early stopping, and the optional xgboost/lightgbm imports."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from typing import Any

import lightgbm
import numpy as np
import pytest
import xgboost
from sklearn.compose import make_column_transformer
from sklearn.ensemble import (
    AdaBoostClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    IsolationForest,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

import modelshelf
from modelshelf.errors import NonFiniteInputError, UnsupportedModelError
from tests.cases import trees as cases
from tests.cases._case import dataset
from tests.kernels import using


def compiled(est: Any) -> modelshelf.Model:
    return modelshelf.load(modelshelf.compile(est), verify=True)


def with_values(X: np.ndarray, features: np.ndarray, values: np.ndarray) -> np.ndarray:
    """One row per (feature, value): a row of X with that feature set to that value."""
    rows = X[np.arange(len(values)) % len(X)].copy()
    rows[np.arange(len(values)), features] = values
    return rows


def assert_same(est: Any, model: modelshelf.Model, X: np.ndarray, rtol: float = 1e-9) -> None:
    assert np.array_equal(model.predict(X), est.predict(X))
    for method in ("predict_proba", "decision_function"):
        if hasattr(est, method):
            np.testing.assert_allclose(
                getattr(model, method)(X), getattr(est, method)(X), rtol=rtol, atol=1e-12
            )


def neighbours(t: np.ndarray, dtype: Any) -> np.ndarray:
    """t itself and the next representable values below and above, in ``dtype``."""
    t = t.astype(dtype)
    return np.concatenate([t, np.nextafter(t, dtype(-np.inf)), np.nextafter(t, dtype(np.inf))])


# -- inputs exactly at thresholds ------------------------------------------------------------


def test_sklearn_thresholds_compare_in_float32() -> None:
    X, y, _ = dataset("breast_cancer")
    est = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
    tree = est.estimators_[0].tree_
    inner = tree.children_left >= 0
    t, f = tree.threshold[inner], tree.feature[inner]
    values = np.concatenate([neighbours(t, np.float64), neighbours(t, np.float32)])
    rows = with_values(X, np.tile(f, 6), values.astype(np.float64))
    assert_same(est, compiled(est), rows)


def test_hist_gradient_boosting_thresholds_compare_in_float64() -> None:
    X, y, _ = dataset("breast_cancer")
    est = HistGradientBoostingClassifier(max_iter=5, random_state=0).fit(X, y)
    nodes = est._predictors[0][0].nodes
    inner = nodes["is_leaf"] == 0
    t, f = nodes["num_threshold"][inner], nodes["feature_idx"][inner]
    assert_same(est, compiled(est), with_values(X, np.tile(f, 3), neighbours(t, np.float64)))


def test_xgboost_thresholds_compare_strictly_in_float32() -> None:
    X, y, _ = dataset("breast_cancer")
    est = xgboost.XGBClassifier(n_estimators=5, max_depth=3, n_jobs=1).fit(X, y)
    trees = json.loads(bytes(est.get_booster().save_raw("json")))["learner"]
    first = trees["gradient_booster"]["model"]["trees"][0]
    inner = np.asarray(first["left_children"]) >= 0
    t = np.asarray(first["split_conditions"], np.float32)[inner]
    f = np.asarray(first["split_indices"])[inner]
    values = neighbours(t, np.float32).astype(np.float64)
    halfway = (t.astype(np.float64) + np.nextafter(t, np.float32(np.inf))) / 2  # rounds to t
    rows = with_values(X, np.tile(f, 4), np.concatenate([values, halfway]))
    assert_same(est, compiled(est), rows, rtol=1e-6)


def test_lightgbm_thresholds_compare_in_float64() -> None:
    X, y, _ = dataset("breast_cancer")
    est = lightgbm.LGBMClassifier(n_estimators=5, num_leaves=8, verbose=-1).fit(X, y)
    text = est.booster_.model_to_string()
    block = text[text.index("Tree=0") :].split("\n\n")[0]
    fields = dict(line.split("=", 1) for line in block.splitlines()[1:])
    t = np.asarray(fields["threshold"].split(), np.float64)
    f = np.asarray(fields["split_feature"].split(), np.int64)
    assert_same(est, compiled(est), with_values(X, np.tile(f, 3), neighbours(t, np.float64)))


# -- multi-output, NaN policy ----------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: DecisionTreeClassifier(random_state=0),
        lambda: RandomForestClassifier(n_estimators=8, random_state=0),
    ],
)
def test_multi_output_classifiers(make: Any) -> None:
    X, y, X_test = dataset("random_multilabel")
    labels = np.array(["no", "yes", "maybe"])
    y = np.column_stack([y[:, 0], y[:, 1] + y[:, 2]])  # two outputs: 2 and 3 classes
    for target in (y, labels[y]):
        est = make().fit(X, target)
        model = compiled(est)
        assert np.array_equal(model.predict(X_test), est.predict(X_test))
        assert model.predict(X_test).dtype == est.predict(X_test).dtype
        for method in ("predict_proba", "predict_log_proba"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # log(0)
                expected = getattr(est, method)(X_test)
            actual = getattr(model, method)(X_test)
            assert len(actual) == len(expected) == 2
            for a, e in zip(actual, expected, strict=True):
                np.testing.assert_allclose(a, e, rtol=1e-9, atol=1e-12)
        assert all(np.array_equal(a, e) for a, e in zip(model.classes_, est.classes_, strict=True))


def test_gradient_boosting_rejects_nan_others_accept_it() -> None:
    X, y, X_test = dataset("random_clf")
    X_nan = X_test.copy()
    X_nan[0, 0] = np.nan
    gb = GradientBoostingClassifier(n_estimators=5).fit(X, y)
    with pytest.raises(NonFiniteInputError):
        compiled(gb).predict(X_nan)
    for est in (DecisionTreeRegressor(), RandomForestRegressor(n_estimators=3)):
        est.fit(X, y)
        np.testing.assert_array_equal(compiled(est).predict(X_nan), est.predict(X_nan))


_BEYOND = 2.0**128 - 2.0**103  # float32 rounds this and above to infinity (a tie: to even)


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize(
    "make",
    [
        DecisionTreeClassifier,
        lambda: RandomForestClassifier(n_estimators=3, random_state=0),
        lambda: ExtraTreesRegressor(n_estimators=3, random_state=0),
        lambda: GradientBoostingRegressor(n_estimators=3),
        lambda: AdaBoostClassifier(n_estimators=3),
        lambda: make_pipeline(SimpleImputer(), RandomForestRegressor(n_estimators=3)),
        lambda: make_pipeline(
            make_column_transformer(("passthrough", [2, 0]), remainder="drop"),
            RandomForestClassifier(n_estimators=3, random_state=0),
        ),
    ],
    ids=["tree", "forest", "extra-trees", "gradient-boosting", "adaboost", "pipeline", "table"],
)
def test_values_float32_makes_infinite_are_refused_as_scikit_learn_refuses_them(make: Any) -> None:
    """scikit-learn's trees cast X to float32 and refuse infinity there: 1e308 and the
    smallest magnitude that rounds up are refused (a probe found them answered as infinity),
    the largest that does not is answered as scikit-learn answers it; as a list and a frame
    too, on both kernels."""
    X, y, X_test = dataset("random_clf")
    est = make().fit(X, y)
    model = compiled(est)
    for value in (1e308, -1e308, _BEYOND, -_BEYOND):
        rows = X_test[:3].copy()
        rows[1, 2] = value
        with pytest.raises(ValueError, match="too large for dtype"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.predict(rows)
        for given in (rows, rows.tolist(), rows[:, ::-1][:, ::-1], rows[1:2]):
            with pytest.raises(NonFiniteInputError, match=r"X\[\d, [02]\] = -?1e\+308|3.40282356"):
                model.predict(given)
    within = X_test[:3].copy()
    within[1, 2] = np.nextafter(_BEYOND, 0.0)
    np.testing.assert_array_equal(model.predict(within), est.predict(within))


def _steps_before_trees() -> list[tuple[str, Any, Any, bool]]:
    """(case, fitted pipeline, rows, scikit-learn refuses): the trees check what the steps
    before them hand on, not the caller's X."""
    import pandas as pd
    from sklearn.preprocessing import (
        MinMaxScaler,
        OneHotEncoder,
        QuantileTransformer,
        StandardScaler,
    )

    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 3)) * 1e-3
    y = (X[:, 0] > 0).astype(int)

    def forest() -> RandomForestClassifier:
        return RandomForestClassifier(n_estimators=3, random_state=0)

    frame = pd.DataFrame({"a": X[:, 0], "c": rng.choice(["x", "y"], 100)})
    table = make_pipeline(
        make_column_transformer((OneHotEncoder(), ["c"]), remainder="passthrough"), forest()
    )
    return [
        # within float32 at the door, beyond it once scaled (std 1e-3)
        (
            "scaled-beyond",
            make_pipeline(StandardScaler(), forest()).fit(X, y),
            np.array([[1e36, 0.0, 0.0]]),
            True,
        ),
        # beyond at the door, mapped into [0, 1] before the trees: answered
        (
            "quantiles-within",
            make_pipeline(QuantileTransformer(n_quantiles=20), forest()).fit(X, y),
            np.array([[1e308, 0.0, 0.0]]),
            False,
        ),
        # the scaler overflows to infinity, which the trees refuse
        (
            "overflow-to-inf",
            make_pipeline(MinMaxScaler(), forest()).fit(X, y),
            np.array([[1e308, 0.0, 0.0]]),
            True,
        ),
        # a table with a string column: numbers reach the trees through the transformer
        (
            "strings-and-numbers",
            table.fit(frame, y),
            pd.DataFrame({"a": [1e308], "c": ["x"]}),
            True,
        ),
    ]


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize(
    "index",
    range(4),
    ids=["scaled-beyond", "quantiles-within", "overflow-to-inf", "strings-and-numbers"],
)
def test_trees_after_steps_check_what_reaches_them(index: int) -> None:
    """A probe found Pipeline(StandardScaler, forest) answering a value the scaler took
    beyond float32 and a column transformer with a string column handing 1e308 on, both
    refused by scikit-learn, and Pipeline(QuantileTransformer, forest) refusing 1e308 that
    scikit-learn answers: the check was on the pipeline's input, not the trees'."""
    _, est, rows, refuses = _steps_before_trees()[index]
    model = compiled(est)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the scalers' overflow warnings, as scikit-learn's
        if refuses:
            with pytest.raises(ValueError, match="too large for dtype"):
                est.predict_proba(rows)
            with pytest.raises(NonFiniteInputError, match="the trees' input"):
                model.predict_proba(rows)
        else:
            np.testing.assert_array_equal(model.predict_proba(rows), est.predict_proba(rows))


def test_isolation_forest_does_not_check_and_answers_as_it_does() -> None:
    X, _, X_test = dataset("random_clf")
    est = IsolationForest(n_estimators=5, random_state=0).fit(X)
    rows = X_test[:3].copy()
    rows[1, 2] = 1e308
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = est.score_samples(rows)
    np.testing.assert_array_equal(compiled(est).score_samples(rows), expected)


def test_categorical_models_really_split_on_categories() -> None:
    for case in cases.CASES:
        if "categorical" in case.id:
            est, _ = case.fit()
            model = compiled(est)
            assert "model/cat_column" in model.image.arrays, case.id


# -- unsupported options ---------------------------------------------------------------------


def test_unsupported_options() -> None:
    X, y, _ = dataset("random_clf")
    with pytest.raises(UnsupportedModelError, match="init=DecisionTreeRegressor"):
        modelshelf.compile(GradientBoostingRegressor(init=DecisionTreeRegressor()).fit(X, y))
    with pytest.raises(UnsupportedModelError, match=r"missing=0\.0"):
        modelshelf.compile(xgboost.XGBClassifier(n_estimators=2, missing=0.0).fit(X, y))
    with pytest.raises(UnsupportedModelError, match="binary:hinge"):
        est = xgboost.XGBClassifier(n_estimators=2, objective="binary:hinge")
        modelshelf.compile(est.fit(X, y))
    with pytest.raises(UnsupportedModelError, match=r"multi:softprob.* in a regressor"):
        est = xgboost.XGBRegressor(n_estimators=2, objective="multi:softprob", num_class=3)
        modelshelf.compile(est.fit(*dataset("iris")[:2]))


# -- size of the image against the essential node data ---------------------------------------


def essential(model: modelshelf.Model, threshold_bytes: int, value_bytes: int) -> tuple[int, int]:
    """(bytes of the image's tree arrays, bytes of the essential node data): per split a
    feature (4), a threshold, two children (8) and a missing flag (1) if the model has one;
    per leaf its outputs; the categorical bitsets."""
    forest = model._executor.forest  # type: ignore[union-attr]
    n_leaves = int((forest.child == np.arange(len(forest.child))).sum())
    n_inner = len(forest.child) - n_leaves
    roles = ("feature", "threshold", "child", "missing", "roots", "leaf_values", "cat_words")
    stored = sum(getattr(forest, r).nbytes for r in roles if getattr(forest, r, None) is not None)
    split = 4 + threshold_bytes + 8 + (forest.missing is not None)
    words = 0 if forest.cat_column is None else forest.cat_words.nbytes
    return stored, n_inner * split + n_leaves * forest.width * value_bytes + words


@pytest.mark.parametrize(
    "case_id",
    [
        "forest-rf-clf-digits",
        "forest-rf-reg-diabetes",
        "gb-clf-multi-iris",
        "hgb-clf-nan",
        "hgb-clf-categorical",
        "lgbm-clf-multi-iris",
        "lgbm-clf-categorical",
        "xgb-clf-nan",
        "xgb-clf-multi-iris",
        "iforest-nan",
    ],
)
def test_image_size_against_the_node_data(case_id: str) -> None:
    """At most 1.25x the essential bytes for trees of 5 leaves or more; smaller trees pay more
    for storing leaves as nodes (up to 1.6x for stumps), which makes traversal 1.5 to 2.9
    times faster (docs/format.md, tree ensembles)."""
    (case,) = [c for c in cases.CASES if c.id == case_id]
    est, _ = case.fit()
    model = compiled(est)
    value_bytes = 4 if case_id.startswith("xgb") else 8
    stored, needed = essential(model, value_bytes, value_bytes)
    forest = model._executor.forest  # type: ignore[union-attr]
    leaves_per_tree = (forest.child == np.arange(len(forest.child))).sum() / len(forest.roots)
    assert stored <= (1.25 if leaves_per_tree >= 5 else 1.6) * needed, (stored, needed)


# -- early stopping, optional imports --------------------------------------------------------


def test_early_stopping_predicts_with_the_best_iteration() -> None:
    X, y, X_test = dataset("breast_cancer")
    fit, valid = slice(0, 300), slice(300, None)
    est: Any = xgboost.XGBClassifier(n_estimators=300, early_stopping_rounds=2, n_jobs=1)
    est.fit(X[fit], y[fit], eval_set=[(X[valid], y[valid])], verbose=False)
    assert est.best_iteration < 299
    np.testing.assert_allclose(compiled(est).predict_proba(X_test), est.predict_proba(X_test))
    est = lightgbm.LGBMClassifier(n_estimators=300, verbose=-1)
    callbacks = [lightgbm.early_stopping(2, verbose=False)]
    est.fit(X[fit], y[fit], eval_X=(X[valid],), eval_y=(y[valid],), callbacks=callbacks)
    assert est.best_iteration_ < 299
    np.testing.assert_allclose(compiled(est).predict_proba(X_test), est.predict_proba(X_test))


def test_converters_import_without_xgboost_and_lightgbm() -> None:
    code = (
        "import sys\n"
        "sys.modules['xgboost'] = sys.modules['lightgbm'] = None\n"
        "import modelshelf.convert as c\n"
        "names = c.supported_estimators()\n"
        "assert 'sklearn.RandomForestClassifier' in names, names\n"
        "assert not [n for n in names if n.startswith(('xgboost', 'lightgbm'))], names\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- level-order layout, one-row plans -------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: RandomForestClassifier(12, max_depth=None, random_state=0),
        lambda: lightgbm.LGBMClassifier(n_estimators=15, num_leaves=40, verbose=-1),
        lambda: xgboost.XGBClassifier(n_estimators=15, max_depth=5, n_jobs=1),
    ],
)
def test_level_order_and_every_one_row_plan(make: Any) -> None:
    """The numpy runtime's level walk (the compiled kernel walks trees its own way)."""
    X, y, X_test = dataset("breast_cancer")
    X_test = X_test[:25].copy()
    X_test[::4, 3] = np.nan  # missing values take each node's default side
    est = make().fit(X, y)
    with using("numpy"):
        model = compiled(est)
    forest = model._executor.forest  # type: ignore[union-attr]
    offsets = model.image.arrays[next(k for k in model.image.arrays if k.endswith("level_offsets"))]
    assert forest.roots.tolist() == list(range(len(forest.roots)))  # level 0: every root
    inner = np.flatnonzero(forest.child != np.arange(len(forest.child)))
    level = np.searchsorted(offsets, inner, side="right") - 1
    assert np.array_equal(
        np.searchsorted(offsets, forest.child[inner], side="right") - 1, level + 1
    )
    expected = est.predict_proba(X_test)
    assert np.allclose(model.predict_proba(X_test), expected, rtol=1e-6, atol=1e-9)
    batch = model.predict_proba(X_test)
    assert forest.compact is not None and len(forest.compact) == forest.depth  # planned
    for plan in ([True] * forest.depth, [False] * forest.depth):
        forest.compact = plan  # whenever finished pairs are dropped, the leaves are the same
        assert np.array_equal(model.predict_proba(X_test), batch)
    for levels in range(forest.depth + 1):
        forest.table_levels, forest.table_nodes = levels, int(offsets[levels])
        one = np.vstack([model.predict_proba(X_test[i : i + 1]) for i in range(len(X_test))])
        assert np.array_equal(one, batch), levels


def test_a_histogram_classifier_of_one_class_is_refused_at_compile() -> None:
    """scikit-learn fits it and predicts two probability columns for its one label."""
    X = np.random.default_rng(0).normal(size=(60, 3))
    est = HistGradientBoostingClassifier(max_iter=3).fit(X, np.zeros(60, dtype=int))
    with pytest.raises(UnsupportedModelError, match=r"one class \(\[0\]\).*at least two classes"):
        modelshelf.compile(est)
