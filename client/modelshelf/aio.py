"""``AsyncClient``: the ``Client`` for asyncio services (FastAPI, aiohttp, ...).

A model this process holds, and whose board is unchanged, is answered on the event loop with no
round trip and no blocking call (``Client.held_model``); anything that needs the daemon (an
acquire, a re-check, a release) runs in a worker thread (``asyncio.to_thread``), so the loop
never waits on a socket. Errors, bounds (``max_held_bytes``, ``max_held_models``), pressure
trimming and reconnection are the ``Client``'s own: this wraps one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import numpy as np

from .client import Client
from .model import Model


class AsyncClient:
    """``await client.model("ns/name")``: the asyncio face of a ``Client`` (same arguments)."""

    def __init__(self, socket: str | None = None, **kwargs: Any) -> None:
        self.client = Client(socket, **kwargs)

    def __reduce__(self) -> Any:
        return self.client.__reduce__()  # refused as its Client is: a connection

    async def model(self, ref: str) -> Model:
        """The model ``"ns/name"`` or ``"ns/name@7"``; held ones without leaving the loop."""
        held = self.client.held_model(ref)
        if held is not None:
            return held
        # a worker thread outlives a cancelled task: closed meanwhile, it must not reconnect
        # and take leases nobody will release
        closes = self.client._closes
        return await asyncio.to_thread(self.client._model, ref, closes)

    async def tensors(self, ref: str) -> Mapping[str, np.ndarray]:
        return (await self.model(ref)).tensors

    async def release(self, ref: str) -> bool:
        return await asyncio.to_thread(self.client.release, ref)

    def held(self) -> dict[str, int]:
        return self.client.held()

    @property
    def last_source(self) -> str:
        return self.client.last_source

    async def close(self) -> None:
        await asyncio.to_thread(self.client.close)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
