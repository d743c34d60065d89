"""Publisher side: fitted estimators and tensor bundles to images.

Needs the ``convert`` extra (scikit-learn, safetensors). Application processes never import this
package; ``import modelshelf`` does not either, only ``modelshelf.compile`` on first call.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from . import compose, lgbm, linear, naive_bayes, neural, preprocessing, text, trees, xgb  # noqa: F401
from ._context import Context, build_metadata, converter, supported_estimators

__all__ = ["compile", "compile_tensors", "converter", "supported_estimators"]


def compile(estimator: Any, *, metadata: Mapping[str, str] | None = None) -> bytes:
    """Compile a fitted estimator into image bytes.

    ``metadata`` holds free-form string pairs stored in the image; its ``name`` key names the
    model. Raises UnsupportedModelError for an estimator or option images cannot represent.
    """
    ctx = Context()
    spec = ctx.convert(estimator)
    names = getattr(estimator, "feature_names_in_", None)
    manifest = {
        "model": spec,
        "input": {
            "type": "numeric",
            "n_features": int(getattr(estimator, "n_features_in_", 0)) or None,
            "feature_names": None if names is None else [str(n) for n in names],
        },
        "metadata": build_metadata(estimator, metadata, "scikit-learn"),
    }
    return ctx.builder.build(manifest)


def compile_tensors(
    tensors: Mapping[str, Any] | str | os.PathLike[str],
    *,
    metadata: Mapping[str, str] | None = None,
) -> bytes:
    """Compile a mapping of name -> array (or a .safetensors file) into a tensor-bundle image.

    Any framework can then take its weights from ``Model.tensors``, zero-copy.
    """
    if isinstance(tensors, str | os.PathLike):
        from safetensors.numpy import load_file

        source: Mapping[str, Any] = load_file(os.fspath(tensors))
        framework = "safetensors"
    else:
        source = tensors
        framework = "numpy"
    ctx = Context()
    for name in sorted(source):
        if not isinstance(name, str):
            raise TypeError(f"tensor names must be strings, got {name!r}")
        ctx.builder.add(name, np.asarray(source[name]))
    extra = dict(metadata or {})
    meta = build_metadata(source, {"name": extra.pop("name", "tensors"), **extra}, framework)
    meta["estimator"] = "tensors"
    manifest = {"model": {"kind": "tensors"}, "input": {"type": "none"}, "metadata": meta}
    return ctx.builder.build(manifest)
