"""Exactness cases: naive Bayes (Gaussian, multinomial, Bernoulli, complement)."""

from __future__ import annotations

import numpy as np
from sklearn.naive_bayes import BernoulliNB, ComplementNB, GaussianNB, MultinomialNB

from ._case import Case, dataset


def _strlabel_counts() -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """random_strlabels made non-negative, for the count-based models."""
    X, y, X_test = dataset("random_strlabels")
    return np.abs(X), y, np.abs(X_test)


def _fractions() -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """random_counts scaled into [0, 1]: BernoulliNB(binarize=None) takes them as is."""
    X, y, X_test = dataset("random_counts")
    top = max(X.max(), X_test.max())
    return X / top, y, X_test / top


CASES: list[Case] = [
    Case("nb-gaussian-iris", lambda: GaussianNB(), "iris"),
    Case("nb-gaussian-wine", lambda: GaussianNB(), "wine"),
    Case("nb-gaussian-breast_cancer", lambda: GaussianNB(), "breast_cancer"),
    Case("nb-gaussian-digits", lambda: GaussianNB(), "digits"),
    Case("nb-gaussian-binary", lambda: GaussianNB(), "random_clf"),
    Case("nb-gaussian-multi", lambda: GaussianNB(var_smoothing=1e-3), "random_multi"),
    Case("nb-gaussian-priors", lambda: GaussianNB(priors=[0.5, 0.2, 0.3]), "random_strlabels"),
    Case("nb-multinomial-digits", lambda: MultinomialNB(), "digits"),
    Case("nb-multinomial-counts", lambda: MultinomialNB(alpha=0.5), "random_counts"),
    Case("nb-multinomial-noprior", lambda: MultinomialNB(fit_prior=False), "random_counts"),
    Case(
        "nb-multinomial-classprior",
        lambda: MultinomialNB(class_prior=[0.2, 0.3, 0.5]),
        "random_binary",
    ),
    Case("nb-multinomial-strlabels", lambda: MultinomialNB(), _strlabel_counts),
    Case("nb-bernoulli-binary", lambda: BernoulliNB(), "random_binary"),
    Case("nb-bernoulli-nobinarize", lambda: BernoulliNB(binarize=None), "random_binary"),
    Case("nb-bernoulli-threshold-digits", lambda: BernoulliNB(binarize=7.5), "digits"),
    Case("nb-bernoulli-realvalued", lambda: BernoulliNB(binarize=0.3), "random_clf"),
    Case("nb-bernoulli-fractions", lambda: BernoulliNB(binarize=None), _fractions),
    Case("nb-bernoulli-strlabels", lambda: BernoulliNB(alpha=0.1), "random_strlabels"),
    Case("nb-complement-counts", lambda: ComplementNB(), "random_counts"),
    Case("nb-complement-norm-counts", lambda: ComplementNB(norm=True), "random_counts"),
    Case("nb-complement-digits", lambda: ComplementNB(), "digits"),
    Case("nb-complement-norm-digits", lambda: ComplementNB(norm=True, alpha=0.3), "digits"),
    Case("nb-complement-binary", lambda: ComplementNB(), "random_binary"),
    Case("nb-complement-strlabels", lambda: ComplementNB(norm=True), _strlabel_counts),
]
