"""Exactness cases: KMeans, MiniBatchKMeans, GaussianMixture (every covariance type) and
EllipticEnvelope.

Ids start with kmeans, mbkmeans, gmm, envelope. Unsupervised: fitted on X alone (``_unlabelled``).
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.covariance import EllipticEnvelope
from sklearn.mixture import GaussianMixture

from ._case import Case, dataset


def _unlabelled(name: str):  # type: ignore[no-untyped-def]
    def data() -> tuple[np.ndarray, None, np.ndarray]:
        X, _, X_test = dataset(name)
        return X, None, X_test

    return data


CASES: list[Case] = [
    Case("kmeans-iris", lambda: KMeans(3, n_init=2, random_state=0), _unlabelled("iris")),
    Case(
        "gmm-full-reg-wine",
        lambda: GaussianMixture(2, reg_covar=1e-2, max_iter=20, random_state=0),
        _unlabelled("wine"),
    ),
    Case("envelope-iris", lambda: EllipticEnvelope(random_state=0), _unlabelled("iris")),
    Case("kmeans-digits", lambda: KMeans(10, n_init=1, random_state=0), _unlabelled("digits")),
    Case(
        "kmeans-elkan",
        lambda: KMeans(5, algorithm="elkan", n_init=1, random_state=0),
        _unlabelled("random_reg"),
    ),
    Case(
        "mbkmeans-wine",
        lambda: MiniBatchKMeans(4, n_init=1, random_state=0),
        _unlabelled("wine"),
    ),
    *(
        Case(
            f"gmm-{kind}-{name}",
            lambda kind=kind: GaussianMixture(3, covariance_type=kind, max_iter=30, random_state=0),
            _unlabelled(name),
        )
        for kind in ("full", "tied", "diag", "spherical")
        for name in ("iris", "random_reg")
    ),
    Case(
        "envelope-contamination",
        lambda: EllipticEnvelope(contamination=0.2, random_state=0),
        _unlabelled("random_reg"),
    ),
    Case(
        "envelope-noprecision",
        lambda: EllipticEnvelope(store_precision=False, support_fraction=0.8, random_state=0),
        _unlabelled("wine"),
    ),
]
