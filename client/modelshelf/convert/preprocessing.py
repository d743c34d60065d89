"""Preprocessing transformers to specs."""

from __future__ import annotations

from typing import Any

from sklearn.preprocessing import StandardScaler

from ._context import Context, converter


@converter(StandardScaler)
def _standard_scaler(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    return ctx.spec("standard_scaler", path, arrays={"mean": est.mean_, "scale": est.scale_})
