"""Optional HTTP endpoint (aiohttp): ``/healthz`` and ``/metrics`` (Prometheus text format).

Enabled by the ``http`` key (``host:port``). Metrics are collected from the shelf at scrape
time into a registry of this server's own, never a global one. HTTP status codes live here
and nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .state import ServerState

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _ShelfCollector(Collector):
    def __init__(self, state: ServerState) -> None:
        self.state = state

    def collect(self) -> Iterator[Any]:
        shelf = self.state.shelf
        counters = CounterMetricFamily(
            "modelshelf_events", "Shelf events since start, by kind", labels=["event"]
        )
        for event, value in sorted(shelf.counters().items()):
            counters.add_metric([event], value)
        yield counters
        described = shelf.describe()
        for tier in ("l1", "l2"):
            for field in ("bytes", "budget", "count", "leased_bytes"):
                gauge = GaugeMetricFamily(
                    f"modelshelf_{tier}_{field}", f"{tier.upper()} {field} (images held)"
                )
                gauge.add_metric([], described[tier][field])
                yield gauge
        for name, value, text in (
            ("leases", described["leases"], "Leases held by client connections"),
            ("leased_bytes", described["leased_bytes"], "Bytes of images leased by clients"),
            ("pressure", self.state.board.pressure, "Pressure signals raised to clients"),
            ("inflight_fetches", described["inflight_fetches"], "Fetches in progress"),
            ("connections", len(self.state.connections), "Open connections"),
            ("generation", self.state.catalog.generation, "Catalog generation"),
        ):
            gauge = GaugeMetricFamily(f"modelshelf_{name}", text)
            gauge.add_metric([], value)
            yield gauge


class HttpEndpoint:
    """The optional aiohttp server: ``/healthz`` and ``/metrics`` over the server's state."""

    def __init__(self, state: ServerState, address: str) -> None:
        host, sep, port = address.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"http address must be host:port, got {address!r}")
        self.host, self.port = host or "127.0.0.1", int(port)
        self.state = state
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_ShelfCollector(state))
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()

    async def stop(self) -> None:
        await self._runner.cleanup()

    async def _healthz(self, request: web.Request) -> web.Response:
        error = self.state.catalog.last_error
        body = {"ok": not error, "store_error": error, "generation": self.state.catalog.generation}
        # the shelf still serves what it holds when the store is down: degraded, not dead
        return web.json_response(body, status=200 if not error else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE}
        )
