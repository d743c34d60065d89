"""The converter registry and the context converters write arrays and specs through."""

from __future__ import annotations

import contextlib
import datetime as _dt
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .._version import __version__
from ..errors import UnsupportedModelError
from ..image import ImageBuilder

Converter = Callable[[Any, "Context", str], dict[str, Any]]
_CONVERTERS: dict[type, Converter] = {}


def converter(*classes: type) -> Callable[[Converter], Converter]:
    """Register ``fn`` as the converter of exactly these estimator classes (not subclasses:
    a subclass may override predict, and an image must never predict differently)."""

    def decorate(fn: Converter) -> Converter:
        for cls in classes:
            _CONVERTERS[cls] = fn
        return fn

    return decorate


def supported_estimators() -> list[str]:
    return sorted(f"{c.__module__.split('.')[0]}.{c.__name__}" for c in _CONVERTERS)


def unsupported(est: Any, what: str) -> UnsupportedModelError:
    """The error for an option of a supported estimator that images cannot represent."""
    return UnsupportedModelError(f"{type(est).__name__}: {what} is not supported by modelshelf")


class Context:
    """Collects the arrays of one image while converters walk an estimator tree."""

    def __init__(self) -> None:
        self.builder = ImageBuilder()

    def convert(self, est: Any, path: str = "model") -> dict[str, Any]:
        fn = _CONVERTERS.get(type(est))
        if fn is None:
            raise UnsupportedModelError(
                f"cannot compile {type(est).__module__}.{type(est).__qualname__}; supported: "
                f"{', '.join(supported_estimators())}"
            )
        _check_fitted(est)
        return fn(est, self, path)

    def spec(
        self,
        kind: str,
        path: str,
        *,
        arrays: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        labels: Any = None,
    ) -> dict[str, Any]:
        """Build a component spec, storing ``arrays`` (None values skipped) under ``path``."""
        refs = {}
        for role, value in (arrays or {}).items():
            if value is not None:
                refs[role] = self.builder.add(f"{path}/{role}", value)
        out_params = dict(params or {})
        if labels is not None:
            encoded = encode_labels(np.asarray(labels))
            if isinstance(encoded, np.ndarray):
                refs["classes"] = self.builder.add(f"{path}/classes", encoded)
            else:
                out_params["classes"] = encoded
        spec: dict[str, Any] = {"kind": kind}
        if refs:
            spec["arrays"] = refs
        if out_params:
            spec["params"] = out_params
        return spec


def encode_labels(classes: np.ndarray) -> np.ndarray | dict[str, Any]:
    """Numeric labels as an array; string labels as a JSON list (keeping str vs object)."""
    if classes.dtype.kind in "biuf":
        return classes
    if classes.dtype.kind == "U":
        return {"dtype": "str", "strings": [str(c) for c in classes]}
    if classes.dtype.kind == "O":
        values = list(classes)
        if all(isinstance(v, str) for v in values):
            return {"dtype": "object", "strings": values}
        try:
            numeric = np.asarray(values)
        except (TypeError, ValueError):
            numeric = None
        if numeric is not None and numeric.dtype.kind in "biuf":
            return numeric
    raise UnsupportedModelError(
        f"class labels of dtype {classes.dtype} must be all numbers or all strings"
    )


def _check_fitted(est: Any) -> None:
    from sklearn.base import BaseEstimator
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    if not isinstance(est, BaseEstimator):
        return
    try:
        check_is_fitted(est)
    except NotFittedError as exc:
        raise UnsupportedModelError(
            f"{type(est).__name__} is not fitted; call fit() before compile()"
        ) from exc


def build_metadata(est: Any, metadata: Mapping[str, Any] | None, framework: str) -> dict[str, Any]:
    extra = dict(metadata or {})
    name = extra.pop("name", type(est).__name__)
    for key, value in [("name", name), *extra.items()]:
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"metadata keys and values must be strings: {key!r}: {value!r}")
    framework_version = ""
    module = type(est).__module__.split(".")[0]
    with contextlib.suppress(ImportError, AttributeError):
        framework_version = str(__import__(module).__version__)
    return {
        "name": name,
        "framework": framework,
        "framework_version": framework_version,
        "estimator": f"{type(est).__module__}.{type(est).__qualname__}",
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "modelshelf_version": __version__,
        "extra": extra,
    }
