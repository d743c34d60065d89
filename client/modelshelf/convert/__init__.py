"""Publisher side: fitted estimators and tensor bundles to images.

Needs the ``convert`` extra (scikit-learn, safetensors). Application processes never import this
package; ``import modelshelf`` does not either, only ``modelshelf.compile`` on first call.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import UnsupportedModelError
from . import (  # noqa: F401
    calibration,
    cboost,
    compose,
    covariance,
    cross_decomposition,
    discriminant,
    encoders,
    ensemble,
    extra,
    glm,
    kernels,
    lgbm,
    linear,
    mixture,
    multioutput,
    naive_bayes,
    neighbors,
    neural,
    nonlinear,
    preprocessing,
    selection,
    svm,
    text,
    transformers,
    trees,
    wrappers,
    xgb,
)
from ._context import Context, build_metadata, converter, supported_estimators

__all__ = ["compile", "compile_tensors", "converter", "supported_estimators"]


def compile(estimator: Any, *, metadata: Mapping[str, str] | None = None) -> bytes:
    """Compile a fitted estimator into image bytes.

    ``metadata`` holds free-form string pairs stored in the image; its ``name`` key names the
    model. Raises UnsupportedModelError for an estimator or option images cannot represent.
    """
    ctx = Context()
    spec = ctx.convert(estimator)
    # Native boosters have no feature_names_in_ or n_features_in_: their converters record them.
    names = _fitted_names(estimator)
    if names is None:
        names = ctx.feature_names
    schema: dict[str, Any] = {
        "type": text.input_type(spec),
        "n_features": int(getattr(estimator, "n_features_in_", 0))
        or spec.get("params", {}).get("n_features")
        or (len(names) if names is not None else None),
        "feature_names": None if names is None else [str(n) for n in names],
    }
    if ctx.categories:  # format 1.1: a DataFrame's category columns are recoded
        schema.update(type="tabular", categories=ctx.categories)
    elif ctx.takes_strings:  # format 1.1: strings reach the encoders
        schema.update(type="tabular")
    manifest = {
        "model": spec,
        "input": schema,
        "metadata": build_metadata(estimator, metadata, _framework(estimator)),
    }
    output = _output(estimator)
    if output is not None:
        manifest["output"] = output
    image = ctx.builder.build(manifest)
    _loads(image, estimator)
    return image


def _loads(image: bytes, estimator: Any) -> None:
    """Refuse what the runtime would refuse: an image is only handed out if it loads (the
    executors' checks of shapes, classes and links run here, not at a user's first load)."""
    from ..errors import ImageError
    from ..model import load

    try:
        load(image)
    except ImageError as exc:
        raise UnsupportedModelError(
            f"{type(estimator).__name__}: the image built for it would not load ({exc}); "
            "it is refused at compile time rather than at load"
        ) from exc


def _output(est: Any) -> dict[str, Any] | None:
    """``set_output(transform="pandas")``: the transform's output names, for a DataFrame. A
    pipeline's transform returns what its last step's does (``Pipeline.set_output`` sets its
    steps' configuration, not its own)."""
    from sklearn.pipeline import Pipeline

    last = est
    while isinstance(last, Pipeline):
        steps = [s for _, s in last.steps if s is not None and not compose._is(s, "passthrough")]
        if not steps:
            return None
        last = steps[-1]
    config = getattr(last, "_sklearn_output_config", {}).get("transform", "default")
    if config == "default" or not hasattr(est, "transform"):
        return None
    if config != "pandas":
        raise UnsupportedModelError(
            f"{type(est).__name__}: set_output(transform={config!r}) cannot be compiled; "
            "use set_output(transform='pandas') or 'default'"
        )
    return {"transform": "pandas", "columns": [str(n) for n in est.get_feature_names_out()]}


def _fitted_names(est: Any) -> Any:
    """``feature_names_in_``, or, for a pipeline starting with passthrough steps (which has
    none), that of its first real step: scikit-learn checks the names there."""
    names = getattr(est, "feature_names_in_", None)
    if names is None and isinstance(getattr(est, "steps", None), list):
        for _, step in est.steps:
            if step is not None and not (isinstance(step, str) and step == "passthrough"):
                return _fitted_names(step)
    return names


def compile_tensors(
    tensors: Mapping[str, Any] | str | os.PathLike[str],
    *,
    metadata: Mapping[str, str] | None = None,
) -> bytes:
    """Compile a mapping of name -> array (or a .safetensors file) into a tensor-bundle image.

    Any framework can then take its weights from ``Model.tensors``, zero-copy. A safetensors
    file's own metadata is kept under ``metadata["extra"]``; ``metadata`` given here wins.
    Raises UnsupportedModelError for a name or dtype images cannot hold (complex, object,
    bfloat16...) and for a file that is not valid safetensors.
    """
    source: Mapping[str, Any]
    file_meta: dict[str, str]
    if isinstance(tensors, str | os.PathLike):
        source, file_meta = _read_safetensors(os.fspath(tensors))
        framework, version = "safetensors", _version_of("safetensors")
    else:
        source, file_meta = tensors, {}
        framework, version = "numpy", np.__version__
    names = list(source)
    for name in names:
        if not isinstance(name, str):
            raise UnsupportedModelError(f"tensor names must be strings, got {name!r}")
    ctx = Context()
    for name in sorted(names):
        try:
            ctx.builder.add(name, np.asarray(source[name]))
        except (TypeError, ValueError) as exc:
            raise UnsupportedModelError(f"tensor {name!r}: {exc}") from exc
    merged = {**file_meta, **(metadata or {})}
    name = merged.pop("name", "tensors")
    meta = build_metadata(source, {"name": name, **merged}, framework)
    meta.update(estimator="tensors", framework_version=version)
    manifest = {"model": {"kind": "tensors"}, "input": {"type": "none"}, "metadata": meta}
    return ctx.builder.build(manifest)


def _read_safetensors(path: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(path, framework="np") as fh:
            meta = dict(fh.metadata() or {})
            return {key: fh.get_tensor(key) for key in fh.keys()}, meta  # noqa: SIM118
    except (SafetensorError, TypeError, ValueError) as exc:
        raise UnsupportedModelError(f"{path}: cannot read it as a safetensors file: {exc}") from exc


def _version_of(module: str) -> str:
    try:
        return str(__import__(module).__version__)
    except (ImportError, AttributeError):
        return ""


def _framework(estimator: Any) -> str:
    root = type(estimator).__module__.split(".")[0]
    return {"sklearn": "scikit-learn"}.get(root, root)
