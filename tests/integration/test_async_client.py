"""``AsyncClient`` against a real daemon: acquires in worker threads while the event loop keeps
running, held models answered on the loop, the Client's errors."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

import modelshelf
from modelshelf import AsyncClient
from modelshelf.errors import ModelNotFound
from modelshelf.store import Store

from .conftest import Shelf


async def test_async_client_never_blocks_the_loop(shelf: Shelf) -> None:
    store = Store(shelf.store)
    for i in range(6):
        store.publish("ns", f"m{i}", modelshelf.compile_tensors({"w": np.full(1 << 18, float(i))}))
    daemon = shelf.make()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    async with AsyncClient(daemon.socket) as client:
        beat = asyncio.create_task(ticker())
        await asyncio.sleep(0.01)
        before = ticks
        tensors = await asyncio.gather(*(client.tensors(f"ns/m{i}") for i in range(6)))
        assert [t["w"][0] for t in tensors] == [float(i) for i in range(6)]
        assert ticks > before  # the loop ran while the daemon fetched and the client mapped
        held = await client.model("ns/m3")  # held: answered on the loop, no thread, no trip
        assert client.last_source == "held" and held is client.client.held_model("ns/m3")
        with pytest.raises(ModelNotFound):
            await client.model("ns/missing")
        assert await client.release("ns/m3") is True
        beat.cancel()
