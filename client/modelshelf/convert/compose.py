"""Pipelines (and ColumnTransformer) to specs whose children are specs."""

from __future__ import annotations

from typing import Any

from sklearn.pipeline import Pipeline

from ._context import Context, converter, unsupported


@converter(Pipeline)
def _pipeline(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    steps = []
    for i, (_, step) in enumerate(est.steps):
        if step is None or step == "passthrough":
            continue
        steps.append(ctx.convert(step, f"{path}/{i}"))
    if not steps:
        raise unsupported(est, "a pipeline whose steps are all 'passthrough'")
    return ctx.spec("pipeline", path, params={"steps": steps})
