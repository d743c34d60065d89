"""EllipticEnvelope to an ``elliptic_envelope`` spec: the robust location, the precision matrix
scikit-learn uses (``get_precision()``: stored, or the pseudo-inverse of the covariance) and
the offset."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.covariance import EllipticEnvelope

from ._context import Context, converter


@converter(EllipticEnvelope)
def _elliptic_envelope(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    return ctx.spec(
        "elliptic_envelope",
        path,
        arrays={
            "location": np.asarray(est.location_, dtype=np.float64),
            "precision": np.asarray(est.get_precision(), dtype=np.float64),
        },
        params={"offset": float(est.offset_)},
    )
