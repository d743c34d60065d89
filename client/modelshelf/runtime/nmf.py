"""NMF and MiniBatchNMF transforms: W solved for the fitted components on each batch.

scikit-learn's transform runs its solver with the components fixed, and the solver's stopping
rule looks at the whole batch, so a row's W depends on the batch it comes in, in scikit-learn
and here alike. Each solver is repeated operation for operation:

- ``cd``: NMF's coordinate descent (``_update_cdnmf_fast``), from W = 0, vectorised over samples
  (a sample's cell reads only its own row); the violation is accumulated sample after sample as
  the Cython loop adds it, and stops the sweeps at ``tol`` times the first one.
- ``mu``: NMF's multiplicative updates (``_multiplicative_update_w``) for any beta loss, from
  W = sqrt(mean(X) / k), stopping every 10 iterations on the beta divergence's progress.
- ``minibatch``: MiniBatchNMF's ``_solve_W``: the same updates, stopping on the relative change
  of W (``np.linalg.norm``, which ``scipy.linalg.norm`` falls back to for matrices).
"""

from __future__ import annotations

import numpy as np

from ..errors import UnknownCategoryError
from ._base import Executor, Spec, register
from .preprocessing import _TRANSFORM, check_width

SOLVERS = ("cd", "mu", "minibatch")
# Iterations an image may ask a transform to run at most.
MAX_ITER = 1 << 20
EPSILON = float(np.finfo(np.float32).eps)  # sklearn.decomposition._nmf.EPSILON
_EPS64 = float(np.finfo(np.float64).eps)


def beta_divergence(X: np.ndarray, W: np.ndarray, H: np.ndarray, beta: float) -> np.float64:
    """``_beta_divergence(X, W, H, beta, square_root=True)`` for dense X: a numpy float, as
    scikit-learn's, so that the progress ratio divides as numpy does (by a zero divergence: inf
    or nan and numpy's warning, where Python floats would raise ZeroDivisionError)."""
    if beta == 2:
        diff = np.ravel(X - np.dot(W, H), order="K")
        return np.float64(np.sqrt(np.dot(diff, diff) / 2.0 * 2))
    WH = np.dot(W, H)
    WH_data = WH.ravel()
    X_data = X.ravel()
    indices = X_data > EPSILON
    WH_data = WH_data[indices]
    X_data = X_data[indices]
    WH_data[WH_data < EPSILON] = EPSILON
    if beta == 1:
        sum_WH = np.dot(np.sum(W, axis=0), np.sum(H, axis=1))
        div = X_data / WH_data
        res = np.dot(X_data, np.log(div))
        res += sum_WH - X_data.sum()
    elif beta == 0:
        div = X_data / WH_data
        res = np.sum(div) - np.prod(X.shape) - np.sum(np.log(div))
    else:
        sum_WH_beta = np.sum(WH**beta)
        sum_X_WH = np.dot(X_data, WH_data ** (beta - 1))
        res = (X_data**beta).sum() - beta * sum_X_WH
        res += sum_WH_beta * (beta - 1)
        res /= beta * (beta - 1)
    return np.float64(np.sqrt(2 * max(res, 0)))


@register
class NMF(Executor):
    """W for X given ``components`` (k, n), by the fitted estimator's solver (see the module)."""

    kind = "nmf"
    keeps_float32 = True  # MiniBatchNMF answers float32 (NMF refuses it in scikit-learn)
    widens_float16 = True  # scikit-learn reads float16 as float64 here
    methods = _TRANSFORM

    def __init__(
        self,
        components: np.ndarray,
        solver: str,
        tol: float,
        max_iter: int,
        l1_reg: float,
        l2_reg: float,
        beta: float,
        seed: int | None,
    ) -> None:
        self.components = components
        self.solver = solver
        self.tol = tol
        self.max_iter = max_iter
        self.l1_reg = l1_reg
        self.l2_reg = l2_reg
        self.beta = beta
        self.seed = seed
        self.n_features = components.shape[1]
        # the Maximization-Minimization exponent of the multiplicative updates
        self.gamma = 1.0 / (2.0 - beta) if beta < 1 else 1.0 / (beta - 1.0) if beta > 2 else 1.0

    @classmethod
    def from_spec(cls, spec: Spec) -> NMF:
        components = spec.array("components", ndim=2)
        spec.check(components.shape[0] >= 1, "components must hold at least one row")
        solver = spec.choice("solver", SOLVERS)
        max_iter = spec.param("max_iter", int)
        spec.check(1 <= max_iter <= MAX_ITER, f"max_iter must be in 1..{MAX_ITER}")
        seed = spec.param("shuffle_seed", (int, type(None)))
        spec.check(seed is None or 0 <= seed < 2**32, "shuffle_seed must be in [0, 2**32)")
        beta = float(spec.param("beta", (int, float)))
        spec.check(solver != "cd" or beta == 2, "coordinate descent minimizes the Frobenius loss")
        return cls(
            components,
            solver,
            float(spec.param("tol", (int, float))),
            max_iter,
            float(spec.param("l1_reg", (int, float))),
            float(spec.param("l2_reg", (int, float))),
            beta,
            seed,
        )

    def transform(self, X: np.ndarray) -> np.ndarray:
        check_width(X, self.n_features, "this NMF")
        if self.solver == "minibatch":  # MiniBatchNMF.transform checks nothing more
            return self._minibatch(X)
        if np.any(X < 0):
            raise UnknownCategoryError(
                "Negative values in data passed to NMF (input X); NMF takes non-negative data"
            )
        if self.solver == "cd":
            return self._coordinate_descent(X)
        if self.beta <= 0 and X.min() == 0:
            raise UnknownCategoryError(
                "When beta_loss <= 0 and X contains zeros, the solver may diverge. Please add "
                "small values to X, or use a positive beta_loss."
            )
        return self._multiplicative(X)

    def _coordinate_descent(self, X: np.ndarray) -> np.ndarray:
        """``_fit_coordinate_descent(..., update_H=False)``."""
        Ht = np.ascontiguousarray(self.components.T)
        k = Ht.shape[1]
        # The same products _update_coordinate_descent recomputes at every iteration.
        HHt = np.dot(Ht.T, Ht)
        XHt = X @ Ht
        if self.l2_reg != 0.0:
            HHt.flat[:: k + 1] += self.l2_reg
        if self.l1_reg != 0.0:
            XHt -= self.l1_reg
        W = np.zeros((len(X), k), dtype=XHt.dtype)
        rng = None if self.seed is None else np.random.RandomState(self.seed)
        violation_init = 0.0
        for n_iter in range(1, self.max_iter + 1):
            order = np.arange(k) if rng is None else rng.permutation(k)
            violation = np.zeros(1)
            for t in order.tolist():
                grad = -XHt[:, t]
                for r in range(k):
                    grad += HHt[t, r] * W[:, r]
                pg = np.where(W[:, t] == 0, np.minimum(0.0, grad), grad)
                # the Cython loop adds |pg| one sample after another: accumulate, not sum
                violation = np.add.accumulate(np.concatenate([violation, np.abs(pg)]))[-1:]
                hess = HHt[t, t]
                if hess != 0:
                    W[:, t] = np.maximum(W[:, t] - grad / hess, 0.0)
            if n_iter == 1:
                violation_init = float(violation[0])
            if violation_init == 0 or float(violation[0]) / violation_init <= self.tol:
                break
        return W

    def _initial_w(self, X: np.ndarray) -> np.ndarray:
        k = len(self.components)
        return np.full((len(X), k), np.sqrt(X.mean() / k), dtype=X.dtype)

    def _multiplicative(self, X: np.ndarray) -> np.ndarray:
        """``_fit_multiplicative_update(..., update_H=False)``."""
        H = self.components
        W = self._initial_w(X)
        error_at_init = beta_divergence(X, W, H, self.beta)
        previous_error = error_at_init
        cache: dict[str, np.ndarray] = {}  # H_sum, HHt, XHt, kept across iterations
        for n_iter in range(1, self.max_iter + 1):
            W = self._update_w(X, W, cache)
            if self.beta < 1:
                W[W < _EPS64] = 0.0
            if self.tol > 0 and n_iter % 10 == 0:
                error = beta_divergence(X, W, H, self.beta)
                if (previous_error - error) / error_at_init < self.tol:
                    break
                previous_error = error
        return W

    def _minibatch(self, X: np.ndarray) -> np.ndarray:
        """``MiniBatchNMF._solve_W``."""
        W = self._initial_w(X)
        W_buffer = W.copy()
        for _ in range(self.max_iter):
            W = self._update_w(X, W, None)
            W_diff = np.linalg.norm(W - W_buffer) / np.linalg.norm(W)
            if self.tol > 0 and W_diff <= self.tol:
                break
            W_buffer[:] = W
        return W

    def _update_w(
        self, X: np.ndarray, W: np.ndarray, cache: dict[str, np.ndarray] | None
    ) -> np.ndarray:
        """``_multiplicative_update_w`` for dense X; ``cache`` (None: recompute) keeps what
        NMF passes back between iterations, H_sum included: the L1 term and the zero guard
        below change it in place, as they change scikit-learn's."""
        H, beta = self.components, self.beta
        keep = {} if cache is None else cache
        if beta == 2:
            if "XHt" not in keep:
                keep["XHt"] = X @ H.T
            numerator = keep["XHt"].copy() if cache is not None else keep["XHt"]
            if "HHt" not in keep:
                keep["HHt"] = np.dot(H, H.T)
            denominator = np.dot(W, keep["HHt"])
        else:
            WH_safe_X = np.dot(W, H)
            WH = WH_safe_X.copy()
            if beta - 1.0 < 0:
                WH[WH < EPSILON] = EPSILON
            if beta - 2.0 < 0:
                WH_safe_X[WH_safe_X < EPSILON] = EPSILON
            if beta == 1:
                np.divide(X, WH_safe_X, out=WH_safe_X)
            elif beta == 0:
                WH_safe_X **= -1
                WH_safe_X **= 2
                WH_safe_X *= X
            else:
                WH_safe_X **= beta - 2
                WH_safe_X *= X
            numerator = WH_safe_X @ H.T
            if beta == 1:
                if "H_sum" not in keep:
                    keep["H_sum"] = np.sum(H, axis=1)
                denominator = keep["H_sum"][np.newaxis, :]
            else:
                WH **= beta - 1
                denominator = np.dot(WH, H.T)
        if self.l1_reg > 0:
            denominator += self.l1_reg
        if self.l2_reg > 0:
            denominator = denominator + self.l2_reg * W
        denominator[denominator == 0] = EPSILON
        numerator /= denominator
        delta_W = numerator
        if self.gamma != 1:
            delta_W **= self.gamma
        W *= delta_W
        return W
