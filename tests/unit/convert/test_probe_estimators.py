"""Edge cases found by sweeping scikit-learn's estimators (every one modelshelf compiles, on
degenerate fits and extreme inputs): each answered something scikit-learn does not, or failed
with an exception that named an internal function."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import ARDRegression, BayesianRidge
from sklearn.neighbors import NearestCentroid
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, NuSVC

import modelshelf
from modelshelf.errors import NonFiniteInputError, UnsupportedModelError

# scikit-learn's own: SVC's probability is deprecated; NearestCentroid's fit divides 0 by 0
pytestmark = pytest.mark.filterwarnings(
    "ignore:The `probability` parameter:FutureWarning",
    "ignore:invalid value encountered in divide:RuntimeWarning",
)
RNG = np.random.default_rng(0)
X = RNG.normal(size=(60, 4))


@pytest.mark.parametrize("make", [SVC, lambda **kw: NuSVC(nu=0.3, **kw)], ids=["svc", "nusvc"])
@pytest.mark.parametrize("n_classes", [2, 3])
def test_an_overflowing_kernel_gives_libsvms_probabilities(make, n_classes: int) -> None:
    """A poly kernel overflows on 1e200 (its decision values are NaN); libsvm's clip of each
    pairwise probability (its min and max templates) turns NaN into 1e-7, so the coupling puts
    the mass on one class: modelshelf answered a uniform distribution (numpy's min/max keep
    NaN), which its own predict contradicted."""
    y = np.arange(len(X)) % n_classes
    est = make(kernel="poly", probability=True, random_state=0).fit(X, y)
    model = modelshelf.load(modelshelf.compile(est))
    rows = np.vstack([np.full(4, 1e200), X[:5]])
    got, expected = model.predict_proba(rows), est.predict_proba(rows)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_allclose(got, expected, rtol=1e-12)  # the coupling's last bits (README)
    np.testing.assert_array_equal(model.predict(rows), est.predict(rows))


@pytest.mark.parametrize("make", [BayesianRidge, ARDRegression])
def test_keywords_scikit_learn_takes_are_refused_by_name(make) -> None:
    """predict(X, return_std=True) raised a TypeError naming an internal closure."""
    y = X @ np.arange(4.0)
    for est in (make().fit(X, y), make_pipeline(StandardScaler(), make()).fit(X, y)):
        model = modelshelf.load(modelshelf.compile(est))
        with pytest.raises(
            UnsupportedModelError, match=r"predict\(\) .* takes X only, got return_std"
        ):
            model.predict(X[:2], return_std=True)
        np.testing.assert_array_equal(model.predict(X[:2]), est.predict(X[:2]))


def test_a_nearest_centroid_of_one_row_per_class_refuses_its_scores() -> None:
    """Fitted on one row per class, its deviations are 0/0: scikit-learn refuses the scores
    (Input contains NaN) and still predicts; modelshelf answered NaN probabilities."""
    est = NearestCentroid().fit(X[:3], ["a", "b", "c"])
    model = modelshelf.load(modelshelf.compile(est))
    np.testing.assert_array_equal(model.predict(X[3:9]), est.predict(X[3:9]))
    for method in ("predict_proba", "predict_log_proba", "decision_function"):
        with pytest.raises(ValueError):
            getattr(est, method)(X[3:9])
        with pytest.raises(NonFiniteInputError, match="one sample per class"):
            getattr(model, method)(X[3:9])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_nearest_centroid_whose_deviations_overflow_answers_as_scikit_learn() -> None:
    """Features near 1e154: the squared deviations overflow to inf (not NaN), scikit-learn
    answers (x / inf = 0, uniform scores); it was refused as 'fitted with one sample per
    class', which it was not."""
    big = X * 1e154
    y = (X[:, 0] > 0).astype(int)
    est = NearestCentroid().fit(big, y)
    assert np.isinf(est.within_class_std_dev_).all()
    model = modelshelf.load(modelshelf.compile(est))
    for method in ("predict", "predict_proba", "predict_log_proba", "decision_function"):
        np.testing.assert_array_equal(
            getattr(model, method)(big[:5]), getattr(est, method)(big[:5])
        )


def test_adaboost_refuses_nan_as_scikit_learn_does() -> None:
    """scikit-learn's AdaBoost validates X itself; its trees would take NaN, and the image
    answered every method for a row with NaN."""
    from sklearn.ensemble import AdaBoostClassifier, AdaBoostRegressor

    y = (X[:, 0] > 0).astype(int)
    row = X[:2].copy()
    row[0, 1] = np.nan
    for est in (AdaBoostClassifier(n_estimators=5), AdaBoostRegressor(n_estimators=5)):
        est.fit(X, y)
        model = modelshelf.load(modelshelf.compile(est))
        with pytest.raises(ValueError, match="NaN"):
            est.predict(row)
        with pytest.raises(NonFiniteInputError):
            model.predict(row)


def test_a_threshold_over_a_response_its_estimator_lacks_is_refused_at_compile() -> None:
    """scikit-learn fits FixedThresholdClassifier(LinearSVC(), response_method='predict_proba')
    and fails at its first prediction; compile raised a bare AttributeError (the CLI printed a
    traceback in --json mode)."""
    from sklearn.model_selection import FixedThresholdClassifier
    from sklearn.svm import LinearSVC

    y = (X[:, 0] > 0).astype(int)
    est = FixedThresholdClassifier(LinearSVC(), response_method="predict_proba").fit(X, y)
    with pytest.raises(UnsupportedModelError, match="response_method='predict_proba' over"):
        modelshelf.compile(est)
