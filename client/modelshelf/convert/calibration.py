"""CalibratedClassifierCV, FixedThresholdClassifier and TunedThresholdClassifierCV to specs.

Each calibrated classifier's calibrators are stored flat: sigmoid ``a_``/``b_`` per class;
isotonic thresholds of all classes one after another with offsets. Which class each
calibrator fills is computed here, with scikit-learn's own steps.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.calibration import CalibratedClassifierCV, _SigmoidCalibration
from sklearn.isotonic import IsotonicRegression
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.validation import _check_response_method

from ._context import Context, converter
from ._delegate import methods_of, refuse

try:  # scikit-learn >= 1.5
    from sklearn.model_selection import FixedThresholdClassifier, TunedThresholdClassifierCV
except ImportError:  # pragma: no cover - older scikit-learn has neither
    THRESHOLDS: tuple[type, ...] = ()
else:
    THRESHOLDS = (FixedThresholdClassifier, TunedThresholdClassifierCV)


@converter(CalibratedClassifierCV)
def _calibrated(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    classes = np.asarray(est.classes_)
    members: list[dict[str, Any]] = []
    arrays: dict[str, Any] = {}
    for i, member in enumerate(est.calibrated_classifiers_):
        if member.method not in ("sigmoid", "isotonic"):
            raise refuse(
                est, f"method={member.method!r}", "refit with method='sigmoid' or 'isotonic'"
            )
        base = member.estimator
        response = _check_response_method(base, ["decision_function", "predict_proba"]).__name__
        calibrators = member.calibrators
        # _CalibratedClassifier.predict_proba: zip(pos_class_indices, scores.T, calibrators).
        targets = LabelEncoder().fit(member.classes).transform(base.classes_)[: len(calibrators)]
        if len(classes) == 2:
            targets = targets + 1
        arrays[f"targets_{i}"] = np.asarray(targets, dtype=np.int64)
        if member.method == "sigmoid":
            if not all(type(c) is _SigmoidCalibration for c in calibrators):
                raise refuse(est, "a sigmoid calibrator of another type", "refit it")
            arrays[f"a_{i}"] = np.array([float(c.a_) for c in calibrators])
            arrays[f"b_{i}"] = np.array([float(c.b_) for c in calibrators])
        else:
            arrays.update(_isotonic(est, i, calibrators))
        members.append(
            {
                "estimator": ctx.convert(base, f"{path}/{i}"),
                "response": response,
                "method": member.method,
            }
        )
    return ctx.spec(
        "calibrated_classifier", path, arrays=arrays, params={"members": members}, labels=classes
    )


def _isotonic(est: Any, i: int, calibrators: list[Any]) -> dict[str, np.ndarray]:
    for c in calibrators:
        if type(c) is not IsotonicRegression or c.out_of_bounds != "clip":
            raise refuse(est, "an isotonic calibrator that does not clip", "refit it")
    xs = [np.asarray(c.X_thresholds_, dtype=np.float64) for c in calibrators]
    ys = [np.asarray(c.y_thresholds_, dtype=np.float64) for c in calibrators]
    offsets = np.concatenate([[0], np.cumsum([len(x) for x in xs])]).astype(np.int64)
    return {
        f"x_{i}": np.concatenate(xs),
        f"y_{i}": np.concatenate(ys),
        f"offsets_{i}": offsets,
        f"bounds_{i}": np.array([[float(c.X_min_), float(c.X_max_)] for c in calibrators]),
    }


@converter(*THRESHOLDS)
def _threshold(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    base = est.estimator_
    classes = np.asarray(base.classes_)
    if len(classes) != 2:
        raise refuse(
            est,
            f"an estimator with {len(classes)} classes",
            "thresholds apply to binary classifiers",
        )
    try:
        response = _check_response_method(base, est._get_response_method()).__name__
    except AttributeError as exc:  # scikit-learn fits it, and fails at the first prediction
        raise refuse(
            est,
            f"response_method={est.response_method!r} over {type(base).__name__}",
            f"{exc} (scikit-learn's own predict fails on it too); use a response method the "
            "estimator has, or 'auto'",
        ) from exc
    if hasattr(est, "best_threshold_"):  # TunedThresholdClassifierCV
        pos_label = est._curve_scorer._get_pos_label()
        threshold = float(est.best_threshold_)
    else:
        pos_label = est.pos_label
        if est.threshold == "auto":
            threshold = 0.5 if response == "predict_proba" else 0.0
        else:
            threshold = float(est.threshold)
    # _get_response_values_binary: the positive class is pos_label, else classes[-1].
    positive = classes[-1] if pos_label is None else pos_label
    column = int(np.flatnonzero(classes == positive)[0])
    # _threshold_scores_to_class_labels
    if pos_label is None:
        label_map = [0, 1]
    else:
        label_map = [
            int(np.flatnonzero(classes != pos_label)[0]),
            int(np.flatnonzero(classes == pos_label)[0]),
        ]
    exposed = ("predict_proba", "predict_log_proba", "decision_function")
    return ctx.spec(
        "threshold_classifier",
        path,
        params={
            "estimator": ctx.convert(base, f"{path}/estimator"),
            "response": response,
            "column": column,
            "negate": bool(response == "decision_function" and positive == classes[0]),
            "threshold": threshold,
            "map": label_map,
            "methods": methods_of(est, exposed),
        },
    )
