"""Exactness cases: PLSRegression, PLSCanonical, CCA and PLSSVD."""

from __future__ import annotations

from sklearn.cross_decomposition import CCA, PLSSVD, PLSCanonical, PLSRegression

from ._case import Case

CASES: list[Case] = [
    Case("pls-regression", lambda: PLSRegression(n_components=3), "diabetes"),
    Case("pls-regression-multi", lambda: PLSRegression(n_components=4), "random_multireg"),
    Case(
        "pls-regression-noscale", lambda: PLSRegression(n_components=2, scale=False), "random_reg"
    ),
    Case("pls-canonical", lambda: PLSCanonical(n_components=2), "random_multireg"),
    Case(
        "pls-canonical-svd",
        lambda: PLSCanonical(n_components=3, algorithm="svd", scale=False),
        "random_multireg",
    ),
    Case("pls-cca", lambda: CCA(n_components=2), "random_multireg"),
    Case("pls-cca-1d", lambda: CCA(n_components=1), "diabetes"),
    Case("pls-svd", lambda: PLSSVD(n_components=3), "random_multireg"),
    Case("pls-svd-noscale", lambda: PLSSVD(n_components=2, scale=False), "random_multireg"),
]
