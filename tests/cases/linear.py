"""Exactness cases: linear models and one-vs-rest.

Ids start with the family: logreg, ovr, sgd, sgdreg, svc, svr, perceptron, pa, ridge, ridgeclf,
linreg, lasso, enet, multitask, lars, omp, huber. Small ``max_iter`` where convergence does not
matter: exactness only needs a fitted model, and the whole matrix must stay quick to fit.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.linear_model import (
    ElasticNet,
    ElasticNetCV,
    HuberRegressor,
    Lars,
    LarsCV,
    Lasso,
    LassoCV,
    LassoLars,
    LassoLarsCV,
    LassoLarsIC,
    LinearRegression,
    LogisticRegression,
    LogisticRegressionCV,
    MultiTaskElasticNet,
    MultiTaskElasticNetCV,
    MultiTaskLasso,
    MultiTaskLassoCV,
    OrthogonalMatchingPursuit,
    OrthogonalMatchingPursuitCV,
    PassiveAggressiveClassifier,
    PassiveAggressiveRegressor,
    Perceptron,
    Ridge,
    RidgeClassifier,
    RidgeClassifierCV,
    RidgeCV,
    SGDClassifier,
    SGDRegressor,
)
from sklearn.multiclass import OneVsRestClassifier
from sklearn.svm import LinearSVC, LinearSVR

from ._case import Case, dataset

Data = tuple[np.ndarray, np.ndarray, np.ndarray]


def _quiet(make: Callable[[], Any]) -> Callable[[], Any]:
    """PassiveAggressive* warn (FutureWarning) at construction, outside Case.fit's filter."""

    def build() -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return make()

    return build


def _column_target() -> Data:
    """diabetes with y as an (n, 1) column: predict then returns (n, 1) too."""
    X, y, X_test = dataset("diabetes")
    return X, y.reshape(-1, 1), X_test


def _constant_first_label() -> Data:
    """random_multilabel where label 0 is set in every training row: OneVsRestClassifier fits a
    constant predictor for it, and that first estimator moves the threshold to 0.5."""
    X, Y, X_test = dataset("random_multilabel")
    Y = Y.copy()
    Y[:, 0] = 1
    return X, Y, X_test


def _constant_middle_label() -> Data:
    X, Y, X_test = dataset("random_multilabel")
    Y = Y.copy()
    Y[:, 2] = 0
    return X, Y, X_test


def _sgd(loss: str, **kw: Any) -> Callable[[], Any]:
    return lambda: SGDClassifier(loss=loss, max_iter=20, tol=None, random_state=0, **kw)


def _sgdreg(loss: str, **kw: Any) -> Callable[[], Any]:
    return lambda: SGDRegressor(loss=loss, max_iter=20, tol=None, random_state=0, **kw)


LOGREG: list[Case] = [
    Case("logreg-binary-breast_cancer", lambda: LogisticRegression(max_iter=300), "breast_cancer"),
    Case("logreg-multinomial-iris", lambda: LogisticRegression(max_iter=1000), "iris"),
    Case("logreg-multinomial-digits", lambda: LogisticRegression(max_iter=30), "digits"),
    Case("logreg-multinomial-wine", lambda: LogisticRegression(max_iter=50), "wine"),
    Case("logreg-strlabels", lambda: LogisticRegression(), "random_strlabels"),
    Case("logreg-binary-random_clf", lambda: LogisticRegression(), "random_clf"),
    Case("logreg-multinomial-random_multi", lambda: LogisticRegression(), "random_multi"),
    Case(
        "logreg-liblinear-breast_cancer",
        lambda: LogisticRegression(solver="liblinear", max_iter=50),
        "breast_cancer",
    ),
    Case(
        "logreg-l1-saga-nointercept-wine",
        lambda: LogisticRegression(l1_ratio=1.0, solver="saga", fit_intercept=False, max_iter=30),
        "wine",
    ),
    Case(
        "logreg-newton-cholesky-random_multi",
        lambda: LogisticRegression(solver="newton-cholesky", C=0.1),
        "random_multi",
    ),
    Case(
        "logreg-cv-breast_cancer",
        lambda: LogisticRegressionCV(Cs=3, cv=3, max_iter=200),
        "breast_cancer",
    ),
    Case("logreg-cv-iris", lambda: LogisticRegressionCV(Cs=3, cv=3, max_iter=200), "iris"),
    Case("logreg-cv-strlabels", lambda: LogisticRegressionCV(Cs=3, cv=3), "random_strlabels"),
]

OVR: list[Case] = [
    Case("ovr-logreg-iris", lambda: OneVsRestClassifier(LogisticRegression()), "iris"),
    Case(
        "ovr-logreg-liblinear-wine",
        lambda: OneVsRestClassifier(LogisticRegression(solver="liblinear")),
        "wine",
    ),
    Case(
        "ovr-logreg-binary-breast_cancer",
        lambda: OneVsRestClassifier(LogisticRegression(max_iter=2000)),
        "breast_cancer",
    ),
    Case(
        "ovr-logreg-strlabels",
        lambda: OneVsRestClassifier(LogisticRegression()),
        "random_strlabels",
    ),
    Case(
        "ovr-logreg-multilabel",
        lambda: OneVsRestClassifier(LogisticRegression()),
        "random_multilabel",
    ),
    Case(
        "ovr-logreg-constant-first-label",
        lambda: OneVsRestClassifier(LogisticRegression()),
        _constant_first_label,
    ),
    Case(
        "ovr-logreg-constant-middle-label",
        lambda: OneVsRestClassifier(LogisticRegression()),
        _constant_middle_label,
    ),
    Case("ovr-svc-digits", lambda: OneVsRestClassifier(LinearSVC(max_iter=200)), "digits"),
    Case(
        "ovr-sgd-modified_huber-random_multi",
        lambda: OneVsRestClassifier(_sgd("modified_huber")()),
        "random_multi",
    ),
    Case(
        "ovr-sgd-log_loss-multilabel",
        lambda: OneVsRestClassifier(_sgd("log_loss")()),
        "random_multilabel",
    ),
    Case("ovr-ridge-multilabel", lambda: OneVsRestClassifier(Ridge()), "random_multilabel"),
    Case("ovr-ridge-random_multi", lambda: OneVsRestClassifier(Ridge()), "random_multi"),
    Case("ovr-ridgeclf-wine", lambda: OneVsRestClassifier(RidgeClassifier()), "wine"),
]

SGD: list[Case] = [
    Case("sgd-hinge-iris", _sgd("hinge"), "iris"),
    Case("sgd-hinge-random_clf", _sgd("hinge"), "random_clf"),
    Case("sgd-log_loss-breast_cancer", _sgd("log_loss"), "breast_cancer"),
    Case("sgd-log_loss-digits", _sgd("log_loss"), "digits"),
    Case("sgd-log_loss-random_strlabels", _sgd("log_loss"), "random_strlabels"),
    Case("sgd-modified_huber-random_clf", _sgd("modified_huber"), "random_clf"),
    # Unscaled wine: most scores clip to -1 and whole rows sum to zero.
    Case("sgd-modified_huber-wine", _sgd("modified_huber"), "wine"),
    Case("sgd-modified_huber-random_multi", _sgd("modified_huber"), "random_multi"),
    Case("sgd-squared_hinge-random_multi", _sgd("squared_hinge"), "random_multi"),
    Case("sgd-squared_hinge-breast_cancer", _sgd("squared_hinge"), "breast_cancer"),
    Case("sgd-perceptron-random_strlabels", _sgd("perceptron"), "random_strlabels"),
    Case("sgd-squared_error-random_clf", _sgd("squared_error", eta0=1e-4), "random_clf"),
    Case("sgd-huber-iris", _sgd("huber"), "iris"),
    Case("sgd-epsilon_insensitive-random_multi", _sgd("epsilon_insensitive"), "random_multi"),
    Case(
        "sgd-squared_epsilon_insensitive-wine",
        _sgd("squared_epsilon_insensitive", eta0=1e-7),
        "wine",
    ),
    Case("sgd-average-log_loss-random_multi", _sgd("log_loss", average=True), "random_multi"),
    Case(
        "sgd-elasticnet-nointercept-digits",
        _sgd("hinge", penalty="elasticnet", fit_intercept=False),
        "digits",
    ),
    Case("sgd-pa1-random_clf", _sgd("hinge", penalty=None, learning_rate="pa1"), "random_clf"),
]

SGDREG: list[Case] = [
    Case("sgdreg-squared_error-diabetes", _sgdreg("squared_error"), "diabetes"),
    Case("sgdreg-squared_error-random_reg", _sgdreg("squared_error", eta0=1e-4), "random_reg"),
    Case("sgdreg-huber-diabetes", _sgdreg("huber"), "diabetes"),
    Case("sgdreg-epsilon_insensitive-random_reg", _sgdreg("epsilon_insensitive"), "random_reg"),
    Case(
        "sgdreg-squared_epsilon_insensitive-diabetes",
        _sgdreg("squared_epsilon_insensitive"),
        "diabetes",
    ),
    Case("sgdreg-average-random_reg", _sgdreg("huber", average=True), "random_reg"),
]

SVM: list[Case] = [
    Case("svc-iris", lambda: LinearSVC(max_iter=200), "iris"),
    Case("svc-breast_cancer", lambda: LinearSVC(max_iter=200), "breast_cancer"),
    Case("svc-random_strlabels", lambda: LinearSVC(max_iter=200), "random_strlabels"),
    Case("svc-random_clf-nointercept", lambda: LinearSVC(fit_intercept=False), "random_clf"),
    Case(
        "svc-l1-random_multi",
        lambda: LinearSVC(penalty="l1", dual=False, max_iter=200),
        "random_multi",
    ),
    Case(
        "svc-crammer_singer-wine",
        lambda: LinearSVC(multi_class="crammer_singer", max_iter=200),
        "wine",
    ),
    Case("svr-diabetes", lambda: LinearSVR(C=10, max_iter=200), "diabetes"),
    Case(
        "svr-squared-random_reg",
        lambda: LinearSVR(loss="squared_epsilon_insensitive", dual=False),
        "random_reg",
    ),
]

PERCEPTRON_PA: list[Case] = [
    Case("perceptron-iris", lambda: Perceptron(max_iter=20, tol=None), "iris"),
    Case("perceptron-breast_cancer", lambda: Perceptron(max_iter=20, tol=None), "breast_cancer"),
    Case("perceptron-random_strlabels", lambda: Perceptron(), "random_strlabels"),
    Case("perceptron-random_clf", lambda: Perceptron(penalty="l2"), "random_clf"),
    Case("pa-clf-wine", _quiet(lambda: PassiveAggressiveClassifier(max_iter=20)), "wine"),
    Case("pa-clf-breast_cancer", _quiet(lambda: PassiveAggressiveClassifier()), "breast_cancer"),
    Case(
        "pa-clf-squared_hinge-random_clf",
        _quiet(lambda: PassiveAggressiveClassifier(loss="squared_hinge")),
        "random_clf",
    ),
    Case("pa-clf-random_multi", _quiet(lambda: PassiveAggressiveClassifier()), "random_multi"),
    Case("pa-reg-diabetes", _quiet(lambda: PassiveAggressiveRegressor()), "diabetes"),
    Case(
        "pa-reg-squared-random_reg",
        _quiet(lambda: PassiveAggressiveRegressor(loss="squared_epsilon_insensitive")),
        "random_reg",
    ),
]

RIDGE: list[Case] = [
    Case("ridge-diabetes", lambda: Ridge(), "diabetes"),
    Case("ridge-random_reg-nointercept", lambda: Ridge(fit_intercept=False), "random_reg"),
    Case("ridge-random_multireg", lambda: Ridge(alpha=3.0), "random_multireg"),
    Case("ridge-column-target", lambda: Ridge(solver="lsqr"), _column_target),
    Case("ridge-cv-diabetes", lambda: RidgeCV(), "diabetes"),
    Case(
        "ridge-cv-alpha_per_target-random_multireg",
        lambda: RidgeCV(alpha_per_target=True),
        "random_multireg",
    ),
    Case("ridgeclf-binary-breast_cancer", lambda: RidgeClassifier(), "breast_cancer"),
    Case("ridgeclf-digits", lambda: RidgeClassifier(), "digits"),
    Case("ridgeclf-random_clf", lambda: RidgeClassifier(fit_intercept=False), "random_clf"),
    Case("ridgeclf-random_strlabels", lambda: RidgeClassifier(), "random_strlabels"),
    Case("ridgeclf-multilabel", lambda: RidgeClassifier(), "random_multilabel"),
    Case("ridgeclf-cv-wine", lambda: RidgeClassifierCV(), "wine"),
    Case("ridgeclf-cv-iris", lambda: RidgeClassifierCV(cv=3), "iris"),
    Case("ridgeclf-cv-random_multi", lambda: RidgeClassifierCV(), "random_multi"),
    Case("ridgeclf-cv-multilabel", lambda: RidgeClassifierCV(), "random_multilabel"),
]

LEAST_SQUARES: list[Case] = [
    Case("linreg-diabetes", lambda: LinearRegression(), "diabetes"),
    Case(
        "linreg-random_reg-nointercept", lambda: LinearRegression(fit_intercept=False), "random_reg"
    ),
    Case("linreg-random_multireg", lambda: LinearRegression(), "random_multireg"),
    Case("linreg-column-target", lambda: LinearRegression(), _column_target),
    Case("lasso-diabetes", lambda: Lasso(alpha=0.1), "diabetes"),
    Case("lasso-random_reg", lambda: Lasso(), "random_reg"),
    Case("lasso-random_multireg", lambda: Lasso(alpha=0.5), "random_multireg"),
    Case("lasso-column-target", lambda: Lasso(alpha=0.1), _column_target),
    Case("lasso-cv-diabetes", lambda: LassoCV(cv=3), "diabetes"),
    Case("lasso-cv-random_reg", lambda: LassoCV(cv=3, alphas=20), "random_reg"),
    Case("enet-diabetes", lambda: ElasticNet(alpha=0.01), "diabetes"),
    Case("enet-random_reg-nointercept", lambda: ElasticNet(fit_intercept=False), "random_reg"),
    Case("enet-random_multireg", lambda: ElasticNet(l1_ratio=0.2), "random_multireg"),
    Case("enet-cv-diabetes", lambda: ElasticNetCV(cv=3, l1_ratio=[0.2, 0.8]), "diabetes"),
    Case("enet-cv-random_reg", lambda: ElasticNetCV(cv=3), "random_reg"),
    Case("multitask-lasso-random_multireg", lambda: MultiTaskLasso(), "random_multireg"),
    Case("multitask-enet-random_multireg", lambda: MultiTaskElasticNet(), "random_multireg"),
    Case("multitask-lasso-cv-random_multireg", lambda: MultiTaskLassoCV(cv=3), "random_multireg"),
    Case(
        "multitask-enet-cv-random_multireg", lambda: MultiTaskElasticNetCV(cv=3), "random_multireg"
    ),
    Case("lars-diabetes", lambda: Lars(), "diabetes"),
    Case("lars-random_multireg", lambda: Lars(n_nonzero_coefs=5), "random_multireg"),
    Case("lars-cv-random_reg", lambda: LarsCV(cv=3), "random_reg"),
    Case("lars-lasso-diabetes", lambda: LassoLars(alpha=0.1), "diabetes"),
    Case("lars-lasso-cv-diabetes", lambda: LassoLarsCV(cv=3), "diabetes"),
    Case("lars-lasso-ic-random_reg", lambda: LassoLarsIC(), "random_reg"),
    Case("omp-diabetes", lambda: OrthogonalMatchingPursuit(n_nonzero_coefs=4), "diabetes"),
    Case("omp-random_multireg", lambda: OrthogonalMatchingPursuit(), "random_multireg"),
    Case("omp-cv-random_reg", lambda: OrthogonalMatchingPursuitCV(cv=3), "random_reg"),
    Case("huber-diabetes", lambda: HuberRegressor(max_iter=200), "diabetes"),
    Case("huber-random_reg", lambda: HuberRegressor(), "random_reg"),
]

CASES: list[Case] = [
    *LOGREG,
    *OVR,
    *SGD,
    *SGDREG,
    *SVM,
    *PERCEPTRON_PA,
    *RIDGE,
    *LEAST_SQUARES,
]
