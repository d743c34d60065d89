"""The models of the shelf benchmark (``bench/shelf.py``): built, compiled, published to a
``file://`` store and saved with ``joblib.dump`` side by side, so both sides load the same model.

- four acquire sizes: a logistic regression (~10 KB), an MLP (~1 MB), and tensor bundles of
  100 MB and 1 GB (``compile_tensors``; the joblib side dumps the same dict of arrays);
- the density set: 500 small logistic regressions (50-150 KB each), fitted on random data.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class Built:
    label: str
    ref: str  # ns/name on the shelf
    digest: str
    image_bytes: int
    joblib_path: str
    joblib_bytes: int
    n_features: int  # 0 for a tensor bundle
    kind: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _publish(store: Any, out: Path, ref: str, label: str, image: bytes, obj: Any, d: int) -> Built:
    import joblib

    ns, name = ref.split("/")
    info = store.publish(ns, name, image)
    path = out / f"{name}.joblib"
    joblib.dump(obj, path)
    kind = "tensors" if isinstance(obj, dict) else type(obj).__name__
    return Built(label, ref, info.digest, len(image), str(path), path.stat().st_size, d, kind)


def acquire_set(store: Any, out: Path, *, big: bool) -> list[Built]:
    """10 KB, 1 MB, 100 MB and (``big``) 1 GB images."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    import modelshelf

    rng = np.random.default_rng(1)
    built = []
    X, y = rng.standard_normal((300, 100)), np.arange(300) % 10
    X2 = rng.standard_normal((200, 784))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: few iterations on purpose
        small = LogisticRegression(max_iter=30).fit(X, y)
        mlp = MLPClassifier((160,), solver="lbfgs", max_iter=5, random_state=0).fit(X2, y[:200])
    for label, name, est, d in (("10 KB", "logreg-10k", small, 100), ("1 MB", "mlp-1m", mlp, 784)):
        image = modelshelf.compile(est, metadata={"name": name})
        built.append(_publish(store, out, f"bench/{name}", label, image, est, d))
    sizes = [("100 MB", "tensors-100m", 100_000_000)]
    if big:
        sizes.append(("1 GB", "tensors-1g", 1_000_000_000))
    for label, name, nbytes in sizes:
        tensors = {"w": np.arange(nbytes // 8, dtype=np.float64)}
        image = modelshelf.compile_tensors(tensors, metadata={"name": name})
        built.append(_publish(store, out, f"bench/{name}", label, image, tensors, 0))
        del image, tensors
    return built


def density_set(store: Any, out: Path, n: int, scale: int = 1) -> list[Built]:
    """``n`` logistic regressions of 150-300 features (times ``scale``) and 40-60 classes
    (48-144 KB of coefficients at scale 1), a few lbfgs iterations each: real fitted models,
    cheap to make."""
    from sklearn.linear_model import LogisticRegression

    import modelshelf

    rng = np.random.default_rng(2)
    built = []
    for i in range(n):
        d, k = int(rng.integers(150, 301)) * scale, int(rng.integers(40, 61))
        X = rng.standard_normal((2 * k, d))
        y = rng.permutation(np.arange(2 * k) % k)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = LogisticRegression(max_iter=5).fit(X, y)
        image = modelshelf.compile(est, metadata={"name": f"d{i:04d}"})
        built.append(_publish(store, out, f"dense/d{i:04d}", f"d{i:04d}", image, est, d))
    return built
