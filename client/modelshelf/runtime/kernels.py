"""``sklearn.metrics.pairwise`` kernels between input rows and a stored basis, operation for
operation (KernelRidge against ``X_fit_``, Nystroem against ``components_``), and the
executors that use them.

A ``Kernel`` is read from a component's params (``kernel``, ``gamma``, ``degree``, ``coef0``,
resolved at compile time to the values scikit-learn's kernel functions end up using) and its
arrays (``basis`` (m, n); ``basis_norms`` (m,) for ``rbf``: ``row_norms(basis, squared=True)``,
which scikit-learn recomputes at every call; for ``cosine`` the basis is stored normalized).
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ._base import Executor, Spec, register
from ._math import matmul
from .preprocessing import check_width

KERNELS = ("linear", "poly", "polynomial", "rbf", "sigmoid", "laplacian", "cosine", "chi2")


class Kernel:
    """One kernel function and its basis rows."""

    def __init__(
        self,
        name: str,
        basis: np.ndarray,
        norms: np.ndarray | None,
        gamma: float,
        degree: int | float,
        coef0: float,
    ) -> None:
        self.name = name
        self.basis = basis
        self.norms = norms
        self.gamma = gamma
        self.degree = degree
        self.coef0 = coef0

    @classmethod
    def from_spec(cls, spec: Spec) -> Kernel:
        name = spec.choice("kernel", KERNELS)
        basis = spec.array("basis", ndim=2)
        spec.check(basis.shape[0] >= 1 and basis.shape[1] >= 1, "basis is empty")
        norms = None
        if name == "rbf":
            norms = spec.array("basis_norms", ndim=1)
            spec.check(norms.shape == basis.shape[:1], "basis_norms needs one value per row")
        gamma = float(spec.param("gamma", (int, float)))
        degree = spec.param("degree", (int, float))
        if isinstance(degree, int) and not 0 <= degree <= 64:
            spec.fail(f"degree {degree} is not in 0..64")
        coef0 = spec.param("coef0", (int, float))
        return cls(name, basis, norms, gamma, degree, coef0)

    @property
    def n_features(self) -> int:
        return int(self.basis.shape[1])

    def __call__(self, X: np.ndarray) -> np.ndarray:
        name, Y = self.name, self.basis
        if name in ("linear", "cosine"):
            if name == "cosine":  # sklearn.preprocessing.normalize
                norms = np.sqrt(np.einsum("ij,ij->i", X, X))
                norms[norms == 0.0] = 1.0
                X = X / norms[:, np.newaxis]
            return matmul(X, Y.T)
        if name in ("poly", "polynomial", "sigmoid"):
            K = matmul(X, Y.T)
            K *= self.gamma
            K += self.coef0
            if name == "sigmoid":
                np.tanh(K, K)
            else:
                K **= self.degree
            return K
        if name == "rbf":  # euclidean_distances(X, Y, squared=True)
            K = -2 * matmul(X, Y.T)
            K += np.einsum("ij,ij->i", X, X)[:, np.newaxis]
            K += self.norms[np.newaxis, :]  # type: ignore[index]
            np.maximum(K, 0, out=K)
            K *= -self.gamma
            np.exp(K, K)
            return K
        # laplacian (SciPy's cdist "cityblock") and chi2 (_chi2_kernel_fast) add feature by
        # feature, in order, as their C loops do.
        K = np.zeros((X.shape[0], Y.shape[0]))
        if name == "laplacian":
            for k in range(X.shape[1]):
                K += np.abs(X[:, k, np.newaxis] - Y[np.newaxis, :, k])
            K = -self.gamma * K
        else:
            if (X < 0).any():
                raise InputError("X contains negative values.")
            for k in range(X.shape[1]):
                diff = X[:, k, np.newaxis] - Y[np.newaxis, :, k]
                total = X[:, k, np.newaxis] + Y[np.newaxis, :, k]
                nonzero = total != 0
                K[nonzero] += (diff * diff)[nonzero] / total[nonzero]
            K = -K
            K *= self.gamma
        np.exp(K, K)
        return K


@register
class KernelRidge(Executor):
    """``KernelRidge.predict``: ``kernel(X, X_fit_) @ dual_coef``.

    arrays: the kernel's (``basis`` = ``X_fit_``), ``dual_coef`` f (m,) or (m, targets).
    """

    kind = "kernel_ridge"
    methods = frozenset({"predict"})

    def __init__(self, kernel: Kernel, dual_coef: np.ndarray) -> None:
        self.kernel = kernel
        self.dual_coef = dual_coef

    @classmethod
    def from_spec(cls, spec: Spec) -> KernelRidge:
        kernel = Kernel.from_spec(spec)
        dual_coef = spec.array("dual_coef", ndim=(1, 2))
        spec.check(
            dual_coef.shape[0] == kernel.basis.shape[0], "dual_coef needs one row per basis row"
        )
        return cls(kernel, dual_coef)

    def predict(self, X: np.ndarray) -> np.ndarray:
        check_width(X, self.kernel.n_features, "this KernelRidge")
        return matmul(self.kernel(X), self.dual_coef)


@register
class Nystroem(Executor):
    """``Nystroem.transform``: ``kernel(X, components_) @ normalization.T``.

    arrays: the kernel's (``basis`` = ``components_``), ``normalization`` f (c, m).
    """

    kind = "nystroem"
    methods = frozenset({"transform"})

    def __init__(self, kernel: Kernel, normalization: np.ndarray) -> None:
        self.kernel = kernel
        self.normalization = normalization

    @classmethod
    def from_spec(cls, spec: Spec) -> Nystroem:
        kernel = Kernel.from_spec(spec)
        normalization = spec.array("normalization", ndim=2)
        spec.check(
            normalization.shape[1] == kernel.basis.shape[0],
            "normalization needs one column per basis row",
        )
        return cls(kernel, normalization)

    def transform(self, X: np.ndarray) -> np.ndarray:
        check_width(X, self.kernel.n_features, "this Nystroem")
        return matmul(self.kernel(X), self.normalization.T)
