"""Exactness cases: FactorAnalysis and BayesianGaussianMixture."""

from __future__ import annotations

from sklearn.decomposition import FactorAnalysis
from sklearn.mixture import BayesianGaussianMixture
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ._case import Case


def _bgm(**kw: object) -> BayesianGaussianMixture:
    return BayesianGaussianMixture(n_components=4, random_state=0, max_iter=200, **kw)  # type: ignore[arg-type]


CASES: list[Case] = [
    Case(
        "latent-fa-bgm",
        lambda: make_pipeline(StandardScaler(), FactorAnalysis(n_components=4), _bgm()),
        "wine",
    ),
    Case("latent-fa", lambda: FactorAnalysis(n_components=3, random_state=0), "wine"),
    Case("latent-fa-full", lambda: FactorAnalysis(random_state=0), "iris"),
    Case(
        "latent-fa-varimax",
        lambda: FactorAnalysis(n_components=3, rotation="varimax", random_state=0),
        "random_reg",
    ),
    Case(
        "latent-fa-lapack",
        lambda: FactorAnalysis(n_components=2, svd_method="lapack", noise_variance_init=None),
        "diabetes",
    ),
    Case("latent-bgm-full", lambda: _bgm(), "iris"),
    Case("latent-bgm-tied", lambda: _bgm(covariance_type="tied"), "iris"),
    Case("latent-bgm-diag", lambda: _bgm(covariance_type="diag"), "wine"),
    Case("latent-bgm-spherical", lambda: _bgm(covariance_type="spherical"), "random_reg"),
    Case(
        "latent-bgm-dirichlet-distribution",
        lambda: _bgm(weight_concentration_prior_type="dirichlet_distribution"),
        "iris",
    ),
    Case(
        "latent-bgm-priors",
        lambda: _bgm(
            weight_concentration_prior=0.01, mean_precision_prior=0.5, degrees_of_freedom_prior=6
        ),
        "iris",
    ),
]
