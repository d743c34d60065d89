"""Exactness cases: CategoricalNB over integer category codes."""

from __future__ import annotations

from sklearn.naive_bayes import CategoricalNB

from ._case import Case

CASES: list[Case] = [
    Case("catnb-codes", lambda: CategoricalNB(), "random_codes"),
    Case("catnb-alpha", lambda: CategoricalNB(alpha=0.3, fit_prior=False), "random_codes"),
    Case("catnb-min-categories", lambda: CategoricalNB(min_categories=9), "random_codes"),
    Case("catnb-prior", lambda: CategoricalNB(class_prior=[0.2, 0.3, 0.5]), "random_codes"),
    Case("catnb-binary", lambda: CategoricalNB(), "random_binary"),
]
