"""The scenario's model catalog: what it is made of, how it is built, where it is cached.

Lognormal image sizes between a floor and a ceiling that add up to a total; one real
MLPClassifier image per model (a logistic regression below the narrowest network), published
to a ``file://`` store under tenants' namespaces ``t000/m0000``...; kept on disk by the hash of
its parameters, so that a benchmark builds it once. Also the size syntax (``300M``, ``2.4G``)
the demo's and the benchmark's flags share.

scikit-learn is imported by the build only: the daemon extra does not bring it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

Progress = Callable[[str], None]

_CATALOG_FORMAT = 1  # bump when the build changes what a given set of parameters produces


def noop(message: str) -> None:
    pass


_UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "KI": 2**10, "MI": 2**20, "GI": 2**30}


def parse_bytes(text: str) -> int:
    """``300M``, ``2.4G``, ``10K``, ``512MiB`` or plain bytes: decimal units (the scenario's
    sizes are quoted in MB and GB), ``Ki``/``Mi``/``Gi`` binary."""
    value = text.strip().upper().removesuffix("B")
    digits = value.rstrip("KMGI")
    try:
        return int(float(digits) * _UNITS[value[len(digits) :]])
    except (KeyError, ValueError):
        raise ValueError(f"expected a size like 300M or 2.4G, got {text!r}") from None


def size_argument(text: str) -> int:
    """``parse_bytes`` as an argparse type: its message rather than argparse's own."""
    try:
        return parse_bytes(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


@dataclass(frozen=True)
class CatalogSpec:
    """What a catalog is made of; equal specs build byte-identical stores."""

    models: int = 2000
    total_bytes: int = 2_400_000_000
    min_bytes: int = 10_000
    max_bytes: int = 50_000_000
    tenants: int = 40
    sigma: float = 2.0  # of the lognormal, before clipping and rescaling
    n_features: int = 16
    seed: int = 0

    def key(self) -> str:
        text = json.dumps({**asdict(self), "format": _CATALOG_FORMAT}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Catalog:
    """A built catalog: its store directory and one entry per model."""

    root: Path
    refs: list[str]
    sizes: np.ndarray  # actual image bytes, int64
    tenant_of: np.ndarray  # tenant index per model
    n_features: list[int]
    spec: CatalogSpec

    @property
    def store_url(self) -> str:
        return (self.root / "store").as_uri()

    @property
    def total_bytes(self) -> int:
        return int(self.sizes.sum())

    @classmethod
    def load(cls, root: Path) -> Catalog:
        doc = json.loads((root / "catalog.json").read_text())
        models = doc["models"]
        return cls(
            root,
            [m["ref"] for m in models],
            np.array([m["size"] for m in models], dtype=np.int64),
            np.array([m["tenant"] for m in models], dtype=np.int64),
            [m["n_features"] for m in models],
            CatalogSpec(**doc["spec"]),
        )


def target_sizes(spec: CatalogSpec) -> np.ndarray:
    """Lognormal sizes clipped to [min, max] and scaled so that they add up to the total.

    The scale is found by bisection on ``sum(clip(c * x))``, which keeps both the bounds and
    the total (rescaling after clipping would break the bounds)."""
    n = spec.models
    if not n * spec.min_bytes <= spec.total_bytes <= n * spec.max_bytes:
        raise ValueError(
            f"{n} models of {spec.min_bytes}..{spec.max_bytes} bytes cannot add up to "
            f"{spec.total_bytes} bytes"
        )
    x = np.random.default_rng(spec.seed).lognormal(0.0, spec.sigma, n)
    lo, hi = 1e-30, 1e30
    for _ in range(200):
        mid = (lo * hi) ** 0.5
        if np.clip(mid * x, spec.min_bytes, spec.max_bytes).sum() < spec.total_bytes:
            lo = mid
        else:
            hi = mid
    return np.clip(hi * x, spec.min_bytes, spec.max_bytes).astype(np.int64)


def build_catalog(
    store_url: str,
    n_models: int,
    total_bytes: int,
    min_bytes: int,
    max_bytes: int,
    tenants: int,
    seed: int,
    progress: Progress | None = None,
    *,
    sigma: float = 2.0,
    n_features: int = 16,
) -> list[dict[str, Any]]:
    """Publish ``n_models`` images to ``store_url`` as ``t000/m0000``...; their entries.

    Each model is a real MLPClassifier image with random weights: fitting a network to reach
    50 MB would take minutes, while one tiny fit gives a valid estimator whose ``coefs_`` we
    replace by arrays shaped to the target size (one hidden layer of width h: 8 * ((f + 2) * h
    + 1) bytes of weights). Models smaller than the narrowest network are logistic regressions.
    """
    import warnings

    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    import modelshelf
    from modelshelf.store import Store

    say = progress or noop
    spec = CatalogSpec(
        n_models, total_bytes, min_bytes, max_bytes, tenants, sigma, n_features, seed
    )
    sizes = target_sizes(spec)
    rng = np.random.default_rng(seed + 1)
    X = rng.standard_normal((64, n_features))
    y = (X[:, 0] > 0).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 5 iterations do not converge, and need not
        mlp = MLPClassifier(hidden_layer_sizes=(1,), max_iter=5, random_state=seed).fit(X, y)
    logistic = modelshelf.compile(LogisticRegression().fit(X, y))
    per_unit = 8 * (n_features + 2)

    def network(width: int) -> bytes:
        mlp.hidden_layer_sizes = (width,)
        mlp.coefs_ = [
            rng.standard_normal((n_features, width)) / np.sqrt(n_features),
            rng.standard_normal((width, 1)) / np.sqrt(width),
        ]
        mlp.intercepts_ = [rng.standard_normal(width), rng.standard_normal(1)]
        return bytes(modelshelf.compile(mlp))

    overhead = len(network(1)) - per_unit
    store = Store(store_url)
    digits = max(4, len(str(n_models - 1)))
    entries: list[dict[str, Any]] = []
    started = last = time.monotonic()
    done_bytes = 0
    for i, target in enumerate(sizes):
        width = round((int(target) - overhead) / per_unit)
        image = network(width) if width >= 1 else logistic
        tenant = i % tenants
        namespace, name = f"t{tenant:03d}", f"m{i:0{digits}d}"
        store.publish(namespace, name, image)
        entries.append(
            {"ref": f"{namespace}/{name}", "size": len(image), "tenant": tenant,
             "n_features": n_features}
        )  # fmt: skip
        done_bytes += len(image)
        if time.monotonic() - last >= 3 or i == n_models - 1:
            last = time.monotonic()
            say(
                f"catalog: {i + 1}/{n_models} models, {done_bytes / 1e6:,.0f} of "
                f"{int(sizes.sum()) / 1e6:,.0f} MB published ({last - started:.0f} s)"
            )
    return entries


def cached_catalog(
    cache_root: Path, spec: CatalogSpec, progress: Progress | None = None, *, keep_others: bool
) -> Catalog:
    """The catalog for ``spec`` under ``cache_root``, built (and renamed into place) if absent.

    ``keep_others=False`` removes catalogs of other parameters, so that a cache nobody asked
    for (the demo's) holds one catalog at most."""
    cache_root.mkdir(parents=True, exist_ok=True)
    final = cache_root / f"catalog-{spec.key()}"
    if not keep_others:
        for old in cache_root.glob("catalog-*"):
            if old != final:
                shutil.rmtree(old, ignore_errors=True)
    if (final / "catalog.json").is_file():
        return Catalog.load(final)
    # built aside and renamed: an interrupted build is never mistaken for a finished one
    building = Path(tempfile.mkdtemp(prefix=".building-", dir=cache_root))
    try:
        entries = build_catalog(
            (building / "store").as_uri(), spec.models, spec.total_bytes, spec.min_bytes,
            spec.max_bytes, spec.tenants, spec.seed, progress, sigma=spec.sigma,
            n_features=spec.n_features,
        )  # fmt: skip
        doc = {"spec": asdict(spec), "models": entries}
        (building / "catalog.json").write_text(json.dumps(doc))
        os.rename(building, final)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return Catalog.load(final)
