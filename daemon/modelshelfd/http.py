"""Optional HTTP endpoint (aiohttp): ``/healthz``, ``/readyz``, ``/metrics`` (Prometheus text
format) and the Open Inference Protocol under ``/v2`` (``http_v2.py``).

Enabled by the ``http`` key (``host:port``). Metrics are collected from the shelf at scrape
time into the daemon's registry (``metrics.py``), never prometheus-client's global one. HTTP
status codes live here and in ``http_v2.py``, nowhere else.

Every HTTP peer is bounded like a socket peer: a request head must arrive within
``HEAD_TIMEOUT`` of the connection (or of the previous response), an unread body is drained
for ``LINGER`` at most, answering (handler and write) takes ``REQUEST_TIMEOUT`` at most (a POST
under ``/v2``, an inference or a repository action that may fetch an image cold, takes
``http_infer_timeout``, reading its body included), and at most ``MAX_HTTP_CONNECTIONS`` are
open at once. aiohttp's own log lines (a traceback per
malformed request by default) go through a rate limit, without the traceback when the peer's
request was at fault. A request the HTTP parser refuses (a malformed line or header, a bad
length) is answered as every other refusal is, ``{"error": "<message>"}`` in JSON, not
aiohttp's plain text.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler, RequestPayloadError
from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .config import Config
from .http_v2 import OUTCOME, OpenInference, error
from .ratelog import RateLimited
from .state import ServerState

log = logging.getLogger("modelshelfd.http")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
HEAD_TIMEOUT = 5.0  # seconds to send a whole request head, from connect or the last response
LINGER = 1.0  # seconds an unread request body is drained before the connection closes
REQUEST_TIMEOUT = 10.0  # seconds to answer one request, writing the response included
MAX_HTTP_CONNECTIONS = 64  # a scraper and a probe or two need a handful
MAX_LINE = 4096  # bytes in the request line and in each header (aiohttp's default is 8190)
MAX_HEADERS = 32

_limited = RateLimited(log, interval=10.0)


class _AiohttpLog(logging.LoggerAdapter[logging.Logger]):
    """aiohttp's server logger, rate limited: a malformed request is the peer's fault, one line
    without a traceback; anything else keeps its traceback. aiohttp's messages are its own
    constant strings, so they are safe rate-limit keys."""

    def __init__(self, logger: logging.Logger, stats: Any) -> None:
        super().__init__(logger, {})
        self.stats = stats  # the shelf's counters: every refusal is counted

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info")
        if isinstance(exc, HttpProcessingError):  # refused by the HTTP parser (400, 413, ...)
            self.stats["http_bad_requests"] += 1
        if isinstance(exc, RequestPayloadError | ConnectionError):
            # the rest of a body that does not decode, or a peer gone, drained after the
            # answer (the handler answered and counted it): the peer's doing, a debug line
            level, exc = logging.DEBUG, None
        if not self.isEnabledFor(level):
            return
        if isinstance(exc, HttpProcessingError):
            # the peer's fault, not ours: at most INFO, one line (the parser's message spans
            # several, with the peer's bytes quoted)
            flat = " ".join(str(exc).split())
            _limited.log(min(level, logging.INFO), f"peer/{msg}", f"{msg}: %.200s", *args, flat)
        else:
            _limited.log(level, f"{level}/{msg}", str(msg), *args, exc_info=exc)


class _JsonErrors(RequestHandler):
    """aiohttp's connection handler, answering what its parser refuses (and its own 500s) in
    the protocol's JSON error shape: a client of the Open Inference Protocol reads every
    refusal alike."""

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        plain = super().handle_error(request, status, exc, message)  # logs; raises if sent
        if status >= 500:
            text = f"{HTTPStatus(plain.status).phrase.lower()}: the daemon's log has the cause"
        else:
            reason = " ".join(str(message or getattr(exc, "message", "") or "").split())
            text = f"the HTTP request is malformed: {reason[:200] or 'refused by the parser'}"
        response = error(plain.status, text)
        response.force_close()  # as aiohttp's own: the stream may be out of step
        return response


def _json_errors(server: web.Server) -> RequestHandler:
    """A connection handler of ``server``, as ``server()`` makes one, answering in JSON.
    aiohttp has no hook for its handler class: its private ``_loop`` and ``_kwargs`` are what
    ``Server.__call__`` passes (tests/integration/test_operator_probe.py fails if they move)."""
    return _JsonErrors(server, loop=server._loop, **server._kwargs)


class _Listener:
    """An address's listening servers: each connection goes to the endpoint in charge, which a
    reload may swap without closing a socket (closing one while asyncio accepts on it can
    leave a connection accepted and never served)."""

    def __init__(self, endpoint: HttpEndpoint) -> None:
        self.endpoint: HttpEndpoint | None = endpoint  # None: retiring, refuse
        self.servers: list[asyncio.Server] = []

    def __call__(self) -> asyncio.BaseProtocol:
        return _Refuse() if self.endpoint is None else self.endpoint._protocol()


class _ShelfCollector(Collector):
    def __init__(self, state: ServerState) -> None:
        self.state = state

    def collect(self) -> Iterator[Any]:
        shelf = self.state.shelf
        counters = CounterMetricFamily(
            "modelshelf_events", "Shelf events since start, by kind", labels=["event"]
        )
        events = shelf.counters()
        events["connections_refused"] = self.state.refused  # as `modelshelf stats` has it
        reload = CounterMetricFamily(
            "modelshelf_reload_seconds",
            "Seconds spent bringing images into a tier: l1 from their L2 files, l2 from the store",
            labels=["tier"],
        )
        for tier in ("l1", "l2"):
            reload.add_metric([tier], events.pop(f"{tier}_reload_seconds"))
        for event, value in sorted(events.items()):
            counters.add_metric([event], value)
        yield counters
        yield reload
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
            # a random 63-bit start moving by 1: a float keeps 53 bits, so the low ones
            (
                "generation",
                self.state.catalog.generation % (1 << 53),
                "Catalog generation (modulo 2**53): changes on every publish and removal",
            ),
            ("store_reachable", int(self.state.catalog.reachable), "1 while the store answers"),
            (
                "l1_oldest_seconds",
                described["l1_oldest_seconds"],
                "Seconds the least recently used image in L1 has gone unused",
            ),
        ):
            gauge = GaugeMetricFamily(f"modelshelf_{name}", text)
            gauge.add_metric([], value)
            yield gauge


class HttpEndpoint:
    """The optional aiohttp server: ``/healthz`` and ``/metrics`` over the server's state."""

    def __init__(self, state: ServerState, address: str, config: Config | None = None) -> None:
        """``config``: what to build it by (the body limit, the inference threads), the
        state's unless a reload builds it before it applies its configuration."""
        cfg = config if config is not None else state.config
        host, sep, port = address.rpartition(":")
        if not sep or not (port.isascii() and port.isdigit()):
            raise ValueError(f"http address must be host:port, got {address!r}")
        if host.startswith("[") and host.endswith("]"):  # [::1]:9464, as URLs write IPv6
            host = host[1:-1]
        self.host, self.port = host or "127.0.0.1", int(port)
        self.address = address
        self.state = state
        self.registry = state.metrics.registry
        if not state.metrics.shelf_collected:  # once per daemon: a reload's endpoint shares it
            self.registry.register(_ShelfCollector(state))
            state.metrics.shelf_collected = True
        self.v2 = OpenInference(state, cfg)
        # the body bound is checked by the /v2 handlers first, with the protocol's error
        app = web.Application(
            middlewares=[self._bounded, self.v2.errors], client_max_size=cfg.http_max_body
        )
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        self.v2.routes(app.router)
        self._runner = web.AppRunner(
            app,
            access_log=None,
            logger=_AiohttpLog(logging.getLogger("aiohttp.server"), state.shelf.stats),
            keepalive_timeout=HEAD_TIMEOUT,  # also bounds the wait for the first request head
            lingering_time=LINGER,
            max_line_size=MAX_LINE,
            max_field_size=MAX_LINE,
            max_headers=MAX_HEADERS,
        )
        self._listener: _Listener | None = None
        self._unregistered = 0  # connections accepted that aiohttp has not registered yet

    async def start(self, handover: HttpEndpoint | None = None) -> None:
        """Listen on ``host:port`` (OSError if it cannot be bound), or take over ``handover``'s
        listening sockets, on the same address (a reload that changes the body limit or the
        threads): connections go to this endpoint from now on, none is refused meanwhile."""
        await self._runner.setup()
        if handover is not None and handover._listener is not None:
            self._listener, handover._listener = handover._listener, None
            self._listener.endpoint = self
            return
        listener = _Listener(self)
        try:
            loop = asyncio.get_running_loop()
            listener.servers.append(await loop.create_server(listener, self.host, self.port))
        except BaseException:
            await self.stop()
            raise
        self._listener = listener

    @property
    def listening(self) -> bool:
        """Does it hold its address's listening sockets (not handed over, not closed)?"""
        return self._listener is not None

    async def retire(self) -> None:
        """Stop, once a reload's endpoint took over: the connections this one accepted before
        may still be sending their first request (for ``HEAD_TIMEOUT`` at most); they are
        served, and then it stops (its idle keep-alive connections closed, the requests in
        progress finished)."""
        try:
            if self._listener is not None:  # not taken over (moved, or switched off):
                self._listener.endpoint = None  # refused from now, the sockets closed after
            await asyncio.sleep(HEAD_TIMEOUT)
        finally:
            await self.stop()

    async def stop(self) -> None:
        """Stop accepting (unless another endpoint took the sockets over), let the requests
        in progress finish (aiohttp's shutdown timeout), then stop the inference threads."""
        try:
            if self._listener is not None:
                for server in self._listener.servers:
                    server.close()
                self._listener = None
            while self._unregistered:  # accepted by this endpoint: aiohttp registers them
                await asyncio.sleep(0)  # next, and then lets them finish below
            await self._runner.cleanup()
        finally:
            self.v2.close()

    def _protocol(self) -> asyncio.BaseProtocol:
        """A new connection's protocol: aiohttp's, or one that closes it beyond the limit."""
        server = self._runner.server
        assert server is not None, "the endpoint has not started"
        if len(server.connections) + self._unregistered < MAX_HTTP_CONNECTIONS:
            # asyncio calls this for a whole batch of accepted connections before aiohttp
            # registers any (its connection_made runs on the next turn of the loop, right
            # after the callback scheduled here): count them until then
            self._unregistered += 1
            asyncio.get_running_loop().call_soon(self._registered)
            return _json_errors(server)
        self.state.shelf.stats["http_refused"] += 1
        _limited.log(
            logging.WARNING, "refused", "HTTP connection refused: %d are open already",
            MAX_HTTP_CONNECTIONS,
        )  # fmt: skip
        return _Refuse()

    def _registered(self) -> None:
        self._unregistered -= 1

    @web.middleware
    async def _bounded(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Answer within REQUEST_TIMEOUT, writing included: a peer that does not read its
        responses must not hold a connection (and a task) forever."""
        raised: web.HTTPException | None = None
        slow = request.method == "POST" and request.path.startswith("/v2/")
        limit = self.state.config.http_infer_timeout if slow else REQUEST_TIMEOUT
        timed_out = False
        try:
            async with asyncio.timeout(limit):
                try:
                    response = await handler(request)
                except web.HTTPException as exc:  # 404, 405: written here too, in bounded time
                    response = raised = exc
                with contextlib.suppress(ConnectionError):  # the peer went away: aiohttp closes
                    await response.prepare(request)
                    await response.write_eof()
        except TimeoutError:
            timed_out = True
            self.state.shelf.stats["http_timeouts"] += 1
            _limited.log(
                logging.WARNING, "timeout", "HTTP %s %s not answered within %.0f s; closed",
                request.method, request.path[:100], limit,
            )  # fmt: skip
            if request.transport is not None:
                request.transport.abort()
            raise web.HTTPServiceUnavailable() from None  # never written: the peer is gone
        finally:
            outcome = request.get(OUTCOME)  # an inference: counted once its answer is written
            if outcome is not None:
                self.state.metrics.infer_requests.labels("timeout" if timed_out else outcome).inc()
        if raised is not None:
            raise raised  # aiohttp expects it raised; it is written already
        return response

    async def _healthz(self, request: web.Request) -> web.Response:
        catalog = self.state.catalog
        # the state and the kind of failure, never the store's message: it names the store
        body = {"ok": catalog.reachable, **catalog.health(), "generation": catalog.generation}
        # the shelf still serves what it holds when the store is down: degraded, not dead
        return web.json_response(body, status=200 if catalog.reachable else 503)

    async def _readyz(self, request: web.Request) -> web.Response:
        """Ready to take traffic: the store has answered a listing and the warm list is
        placed (``/healthz`` says whether the store answers now)."""
        body = self.state.readiness()
        return web.json_response(body, status=200 if body["ready"] else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE}
        )


class _Refuse(asyncio.Protocol):
    """A connection beyond MAX_HTTP_CONNECTIONS, or to an address a reload let go of: closed
    as soon as it is made."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()
