"""A FastAPI prediction service over the node's shelf, for several uvicorn workers.

    POST /predict/{namespace}/{name}   body {"rows": [[...], ...], "version": 3 (optional)}
        -> {"model": "ns/name[@3]", "predictions": [...],
            "classes": [...], "probabilities": [[...], ...]   (classifiers only)}
    GET  /healthz                      -> {"ok": true, "held": {...}} (this worker)

    uvicorn app:app --workers 4 --port 8000      # from this directory; the daemon's socket is
                                                 # $MODELSHELF_SOCKET or the default

Each worker process makes one ``modelshelf.AsyncClient`` in the lifespan, after uvicorn has
started it (a client is per process: never make one at import time in a parent that forks).
The workers hold no copy of their own: each maps the daemon's single copy of a model
read-only, so four workers using a model cost its bytes once on the node.

Nothing here blocks the event loop. ``await shelf.model(ref)`` answers a model this worker
holds on the loop, with no round trip, and asks the daemon from a worker thread otherwise.
Predicting a few rows takes microseconds and runs on the loop; a large batch goes to a
thread, so that one big request does not hold up the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

import modelshelf

MAX_ROWS = 10_000  # rows in one request; more is refused (422) before anything is predicted
INLINE_ROWS = 256  # up to this many rows are predicted on the event loop, more in a thread


class PredictRequest(BaseModel):
    rows: list[list[Any]] = Field(min_length=1, max_length=MAX_ROWS)
    version: int | None = Field(default=None, ge=1)


# the most specific class first: AccessDenied is also a PermissionError, InputError a ValueError
STATUS: tuple[tuple[type[Exception], int], ...] = (
    (modelshelf.ModelNotFound, 404),
    (modelshelf.AccessDenied, 403),
    (modelshelf.InvalidModelName, 400),
    (modelshelf.InputError, 400),
    (modelshelf.ShelfError, 503),  # no daemon, a busy shelf, the store unavailable
)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with modelshelf.AsyncClient() as shelf:  # one per worker process
        app.state.shelf = shelf
        yield


app = FastAPI(title="modelshelf FastAPI example", lifespan=lifespan)


@app.exception_handler(modelshelf.ModelshelfError)
async def shelf_error(request: Request, exc: Exception) -> JSONResponse:
    status = next((code for kind, code in STATUS if isinstance(exc, kind)), 500)
    headers = {"Retry-After": "1"} if isinstance(exc, modelshelf.ShelfBusy) else None
    return JSONResponse({"error": str(exc), "kind": type(exc).__name__}, status, headers)


def predict(model: modelshelf.Model, ref: str, rows: list[list[Any]]) -> dict[str, Any]:
    """The reply for ``rows``; the model checks them (InputError: 400)."""
    reply: dict[str, Any] = {"model": ref, "predictions": np.asarray(model.predict(rows)).tolist()}
    if hasattr(model, "predict_proba"):
        reply["classes"] = np.asarray(model.classes_).tolist()
        reply["probabilities"] = np.asarray(model.predict_proba(rows)).tolist()
    return reply


@app.post("/predict/{namespace}/{name}")
async def predict_rows(
    namespace: str, name: str, body: PredictRequest, request: Request
) -> dict[str, Any]:
    ref = f"{namespace}/{name}" + (f"@{body.version}" if body.version else "")
    shelf: modelshelf.AsyncClient = request.app.state.shelf
    model = await shelf.model(ref)
    if len(body.rows) <= INLINE_ROWS:
        return predict(model, ref, body.rows)
    return await asyncio.to_thread(predict, model, ref, body.rows)


@app.get("/healthz")
async def healthz(request: Request) -> dict[str, Any]:
    return {"ok": True, "held": request.app.state.shelf.held()}
