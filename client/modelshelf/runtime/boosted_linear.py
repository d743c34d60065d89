"""XGBoost's linear booster (``booster="gblinear"``): margins from one weight per feature and
output group, then the boosted kinds' links and label rules (runtime/trees.py).

XGBoost adds, per row and group, ``float32(x * w)`` for each present feature in column order
to ``intercept`` (its bias plus the base margin), all in float32 (gblinear.cc's ``Pred``). A
missing (NaN) feature adds nothing. The sum is sequential, so it is done here as a reduction
over the leading axis of a (features, rows, groups) stack of terms, which numpy adds term
after term, element by element.
"""

from __future__ import annotations

import numpy as np

from ..errors import FeatureCountError
from ._base import Spec, register
from .trees import BoostedClassifier, BoostedRegressor

_BLOCK = 1 << 16  # terms per block: bounds the (features x rows x groups) temporary


class LinearMargins:
    """``raw(X)``: the float32 margins of a ``gblinear`` model, shape (n, groups)."""

    __slots__ = ("coef", "intercept", "n_features", "n_outputs")

    def __init__(self, spec: Spec) -> None:
        coef = spec.array("coef", ndim=2, kind="f")
        intercept = spec.array("intercept", ndim=1, kind="f")
        n_features = spec.count("n_features")
        spec.check(coef.dtype == np.float32 and intercept.dtype == np.float32, "float32 weights")
        spec.check(
            coef.shape == (n_features, len(intercept)) and len(intercept) >= 1,
            f"coef must be (n_features, groups) = ({n_features}, {len(intercept)}), "
            f"found {coef.shape}",
        )
        self.coef, self.intercept = coef, intercept
        self.n_features, self.n_outputs = n_features, len(intercept)

    def raw(self, X: np.ndarray, *, divide: bool = True) -> np.ndarray:
        if X.shape[1] != self.n_features:
            raise FeatureCountError(
                f"the model expects {self.n_features} features per sample, got {X.shape[1]}"
            )
        n, d, g = len(X), self.n_features, self.n_outputs
        out = np.empty((n, g), dtype=np.float32)
        rows = max(1, _BLOCK // ((d + 1) * g))
        for start in range(0, n, rows):
            block = X[start : start + rows]
            m = len(block)
            terms = np.empty((d + 1, m, g), dtype=np.float32)
            terms[0] = self.intercept
            with np.errstate(over="ignore", invalid="ignore"):
                x = block.astype(np.float32).T  # float32 rounding of huge values gives inf
                terms[1:] = x[:, :, None] * self.coef[:, None, :]
            terms[1:][np.isnan(x)] = 0  # a missing feature adds nothing
            if m * g > 1:
                out[start : start + m] = np.add.reduce(terms, axis=0)
            else:  # a plain reduction of one vector sums pairwise; prefix sums add in order
                out[start : start + m] = np.add.accumulate(terms, axis=0)[-1]
        return out


@register
class BoostedLinearClassifier(BoostedClassifier):
    """XGBClassifier with ``booster="gblinear"``."""

    kind = "boosted_linear_classifier"

    @classmethod
    def _margins(cls, spec: Spec) -> LinearMargins:
        return LinearMargins(spec)


@register
class BoostedLinearRegressor(BoostedRegressor):
    """XGBRegressor, XGBRanker and ``xgboost.Booster`` with ``booster="gblinear"``."""

    kind = "boosted_linear_regressor"

    @classmethod
    def _margins(cls, spec: Spec) -> LinearMargins:
        return LinearMargins(spec)
