"""Exactness cases: KernelRidge and Nystroem with every compiled kernel."""

from __future__ import annotations

from sklearn.kernel_approximation import Nystroem
from sklearn.kernel_ridge import KernelRidge
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ._case import Case


def _scaled_ridge(**kw: object) -> object:
    return make_pipeline(StandardScaler(), KernelRidge(**kw))


CASES: list[Case] = [
    Case(
        "kernels-nystroem-ridge",
        lambda: make_pipeline(
            StandardScaler(), Nystroem(gamma=0.1, n_components=25, random_state=0), KernelRidge()
        ),
        "diabetes",
    ),
    Case("kernels-ridge-rbf", lambda: _scaled_ridge(kernel="rbf", gamma=0.1), "diabetes"),
    Case(
        "kernels-nystroem-rbf",
        lambda: make_pipeline(
            StandardScaler(),
            Nystroem(gamma=0.2, n_components=30, random_state=0),
            LogisticRegression(),
        ),
        "wine",
    ),
    Case("kernels-ridge-linear", lambda: KernelRidge(alpha=0.5), "diabetes"),
    Case("kernels-ridge-rbf-default", lambda: _scaled_ridge(kernel="rbf"), "random_multireg"),
    Case(
        "kernels-ridge-poly", lambda: _scaled_ridge(kernel="poly", degree=2, coef0=0.5), "diabetes"
    ),
    Case(
        "kernels-ridge-poly-float",
        lambda: _scaled_ridge(kernel="polynomial", degree=3.0),
        "diabetes",
    ),
    Case("kernels-ridge-sigmoid", lambda: _scaled_ridge(kernel="sigmoid", gamma=0.01), "diabetes"),
    Case("kernels-ridge-laplacian", lambda: _scaled_ridge(kernel="laplacian"), "diabetes"),
    Case("kernels-ridge-cosine", lambda: KernelRidge(kernel="cosine"), "random_reg"),
    Case("kernels-ridge-chi2", lambda: KernelRidge(kernel="chi2", gamma=0.5), "random_counts"),
    Case("kernels-nystroem-default", lambda: Nystroem(n_components=20, random_state=0), "iris"),
    Case(
        "kernels-nystroem-poly",
        lambda: Nystroem(kernel="poly", degree=2, n_components=15, random_state=0),
        "iris",
    ),
    Case(
        "kernels-nystroem-sigmoid",
        lambda: Nystroem(kernel="sigmoid", gamma=0.01, coef0=0.1, n_components=15, random_state=0),
        "iris",
    ),
    Case(
        "kernels-nystroem-laplacian",
        lambda: Nystroem(kernel="laplacian", kernel_params=None, n_components=15, random_state=0),
        "random_reg",
    ),
    Case(
        "kernels-nystroem-chi2",
        lambda: Nystroem(kernel="chi2", n_components=15, random_state=0),
        "random_counts",
    ),
    Case(
        "kernels-nystroem-cosine",
        lambda: Nystroem(kernel="cosine", n_components=15, random_state=0),
        "random_reg",
    ),
]
