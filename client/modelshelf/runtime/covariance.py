"""EllipticEnvelope: an outlier detector on the Mahalanobis distance to a robust location.

``score_samples`` is minus the squared Mahalanobis distance, computed as scikit-learn gets it
from ``pairwise_distances(metric="mahalanobis")`` (SciPy's ``sqrt(d.VI.d)``, then squared).
"""

from __future__ import annotations

import numpy as np

from ._base import Executor, Spec, register


@register
class EllipticEnvelope(Executor):
    """Inliers (1) have ``-mahalanobis(X) - offset >= 0``, outliers are -1."""

    kind = "elliptic_envelope"
    methods = frozenset({"predict", "decision_function", "score_samples"})

    def __init__(self, location: np.ndarray, precision: np.ndarray, offset: float) -> None:
        self.location = location
        self.precision = precision
        self.offset = offset

    @classmethod
    def from_spec(cls, spec: Spec) -> EllipticEnvelope:
        location = spec.array("location", ndim=1)
        precision = spec.array("precision", ndim=2)
        n = location.shape[0]
        spec.check(precision.shape == (n, n), f"precision must be ({n}, {n})")
        return cls(location, precision, float(spec.param("offset", (int, float))))

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        centered = X - self.location
        squared = np.einsum("ij,ij->i", centered @ self.precision, centered)
        return -(np.sqrt(squared) ** 2)

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return self.score_samples(X) - self.offset

    def predict(self, X: np.ndarray) -> np.ndarray:
        is_inlier = np.full(len(X), -1, dtype=int)
        is_inlier[self.decision_function(X) >= 0] = 1
        return is_inlier
