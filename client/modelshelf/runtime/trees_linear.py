"""Linear leaves (LightGBM's ``linear_tree``): a leaf's output is a linear model of the input.

A leaf row ``r`` of the forest's leaf table also has a constant ``linear_const[r]`` and terms
``linear_feature[k]``, ``linear_coeff[k]`` for ``k`` in ``linear_offsets[r]`` to
``linear_offsets[r + 1]``. Its output is, as LightGBM's ``Tree::Predict`` computes it in
float64: the constant, plus ``coeff * x`` term after term in order; but the plain leaf value
(``leaf_values[r]``) if any of the leaf's inputs is NaN. LightGBM reads inputs with
``|x| <= 1e-35`` as 0 (its dense rows keep only larger values), and so does this.
"""

from __future__ import annotations

import numpy as np

from ._base import Spec

#: LightGBM's kZeroThreshold (the float 1e-35f, as a double).
_ZERO = float(np.float32(1e-35))


class LinearLeaves:
    """The linear models of a forest's leaf rows."""

    __slots__ = ("coeff", "const", "feature", "offsets")

    def __init__(
        self, const: np.ndarray, offsets: np.ndarray, feature: np.ndarray, coeff: np.ndarray
    ) -> None:
        self.const, self.offsets, self.feature, self.coeff = const, offsets, feature, coeff

    @classmethod
    def from_spec(
        cls, spec: Spec, leaf_values: np.ndarray | None, n_features: int
    ) -> LinearLeaves | None:
        const = spec.array("linear_const", ndim=1, kind="f", optional=True)
        if const is None:
            return None
        offsets = spec.array("linear_offsets", ndim=1, kind="i")
        feature = spec.array("linear_feature", ndim=1, kind="i")
        coeff = spec.array("linear_coeff", ndim=1, kind="f")
        spec.check(
            leaf_values is not None and leaf_values.shape == (len(const), 1),
            "linear leaves need a leaf_values table of one column, one row per leaf model",
        )
        spec.check(
            const.dtype == coeff.dtype == np.float64, "linear leaves are float64 (LightGBM's)"
        )
        spec.check(len(offsets) == len(const) + 1, "linear_offsets: one more than linear_const")
        spec.check(
            len(offsets) == 0 or (offsets[0] == 0 and offsets[-1] == len(feature)),
            f"linear_offsets must run from 0 to {len(feature)} terms",
        )
        spec.check(len(coeff) == len(feature), "one linear_coeff per linear_feature")
        # every leaf's count of terms (a prediction's steps) and every term's column bounded
        spec.check(bool(np.all(offsets[1:] >= offsets[:-1])), "linear_offsets must not decrease")
        spec.check(
            len(feature) == 0 or (int(feature.min()) >= 0 and int(feature.max()) < n_features),
            f"linear_feature must name input columns in [0, {n_features})",
        )
        return cls(const, offsets, feature, coeff)

    def outputs(self, rows: np.ndarray, X: np.ndarray, plain: np.ndarray) -> np.ndarray:
        """The outputs of leaf rows ``rows`` (tree-major (tree, row) pairs over ``X``'s rows),
        ``plain`` their leaf values."""
        start = self.offsets[rows].astype(np.intp)
        count = self.offsets[rows + 1].astype(np.intp) - start
        # Pairs with the most terms first: step k then works on a prefix, never a scatter.
        order = np.argsort(-count, kind="stable")
        start, count = start[order], count[order]
        sample = (order % max(len(X), 1)).astype(np.intp)
        with np.errstate(invalid="ignore"):
            values = np.where(np.abs(X) <= _ZERO, 0.0, X)  # NaN stays NaN
        out = self.const[rows[order]].astype(np.float64)
        nan = np.zeros(len(rows), dtype=bool)
        steps = int(count[0]) if len(count) else 0
        live = np.searchsorted(-count, -np.arange(steps), side="left")  # pairs with > k terms
        for k in range(steps):
            m = int(live[k])
            term = start[:m] + k
            x = values[sample[:m], self.feature[term]]
            nan[:m] |= np.isnan(x)
            out[:m] += self.coeff[term] * x
        result = np.empty_like(out)
        result[order] = np.where(nan, plain[order], out)
        return result
