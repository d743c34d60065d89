"""Helpers shared by the meta-estimator converters."""

from __future__ import annotations

from typing import Any

from ..errors import UnsupportedModelError

PREDICTING = ("predict", "predict_proba", "predict_log_proba", "decision_function")


def has(est: Any, method: str) -> bool:
    """``hasattr`` as scikit-learn's ``available_if`` answers it (False where it raises)."""
    try:
        return hasattr(est, method)
    except Exception:  # some availability checks raise other errors than AttributeError
        return False


def methods_of(est: Any, names: tuple[str, ...] = PREDICTING) -> list[str]:
    return [m for m in names if has(est, m)]


def allow_nan(est: Any) -> bool:
    """The estimator's ``allow_nan`` tag (scikit-learn >= 1.6 tags, else the older dict)."""
    tags = getattr(est, "__sklearn_tags__", None)
    if tags is not None:
        try:
            return bool(tags().input_tags.allow_nan)
        except AttributeError:
            pass
    return bool(est._get_tags().get("allow_nan", False))


def refuse(est: Any, what: str, way_out: str) -> UnsupportedModelError:
    """The error for an option images cannot represent, with what to do instead."""
    return UnsupportedModelError(
        f"{type(est).__name__}: {what} is not supported by modelshelf; {way_out}"
    )
