"""The Open Inference Protocol (KServe v2 REST) over HTTP: routes, bodies and status codes.

Health, server and model metadata, model readiness, inference (JSON tensors and the binary
tensor extension) and the model repository extension, over ``inference.Inference``. Errors
are answered ``{"error": "<message>"}``; the mapping of error classes to HTTP status codes is
here (``_status``) and nowhere else. Each refusal is counted (``modelshelf_http_infer_requests``
by outcome for inferences) and logged at a bounded rate. Bodies are bounded by
``http_max_body`` before they are read. Repository load and unload are admin actions: refused
unless ``http_admin`` is on (HTTP has no peer credentials), and audit-logged like the admin
socket's.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from modelshelf import __version__
from modelshelf.errors import (
    AccessDenied,
    ImageError,
    InputError,
    InvalidModelName,
    ModelNotFound,
    ProtocolError,
    ShelfBusy,
    StoreError,
)

from .config import Config
from .errors import BadRequest, store_refusal
from .inference import Inference, QueueFull, Slot, protocol_name
from .oip import JsonTooLarge
from .ratelog import RateLimited
from .state import ServerState

log = logging.getLogger("modelshelfd.http")
audit = logging.getLogger("modelshelfd.audit")
_limited = RateLimited(log, interval=10.0)

SERVER_NAME = "modelshelfd"
EXTENSIONS = ("model_repository", "binary_tensor_data")
HEADER_LENGTH = "Inference-Header-Content-Length"
OUTCOME = "modelshelf.outcome"  # the request's key for an inference's outcome
MAX_SMALL_BODY = 64 << 10  # bytes of a repository request's body (parameters only)


class BodyTooLarge(BadRequest):
    """A request body over ``http_max_body`` (413)."""


class AdminDisabled(AccessDenied):
    """A repository load or unload while ``http_admin`` is off (403)."""


def _status(exc: BaseException) -> tuple[int, str]:
    """The HTTP status and the outcome label of an error."""
    if isinstance(exc, BodyTooLarge | JsonTooLarge):
        return 413, "too_large"
    if isinstance(exc, ConnectionResetError):  # the peer went away mid-body: nobody to answer
        return 499, "disconnected"
    if isinstance(exc, HttpProcessingError | RequestPayloadError):  # a body that does not decode
        return 400, "bad_request"
    if isinstance(exc, QueueFull):
        return 503, "queue_full"
    if isinstance(exc, ModelNotFound):
        return 404, "not_found"
    if isinstance(exc, AccessDenied):
        return 403, "access_denied"
    if isinstance(exc, BadRequest | InputError | InvalidModelName | ProtocolError):
        return 400, "bad_request"
    if isinstance(exc, ShelfBusy):
        return 503, "busy"
    if isinstance(exc, StoreError):
        return 503, "store_unavailable"
    if isinstance(exc, ImageError):
        return 500, "image_error"
    return 500, "internal"


# /v2/models/acme/churn[/...]: a name spelled ns/name, as the client, CLI and X-Model spell it
_SLASHED = re.compile(
    r"/v2/models/(?P<ns>[a-z0-9][a-z0-9._-]*)/(?P<name>(?!(?:versions|ready|infer)(?:/|$))"
    r"[a-z0-9][a-z0-9._-]*)(?P<rest>(?:/.*)?)"
)


def error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class OpenInference:
    """The ``/v2`` routes of the HTTP endpoint."""

    def __init__(self, state: ServerState, config: Config | None = None) -> None:
        self.state = state
        self.inference = Inference(state, config)

    def routes(self, router: web.UrlDispatcher) -> None:
        get, post = router.add_get, router.add_post
        for path in ("/v2", "/v2/"):
            get(path, self._server_metadata)
        get("/v2/health/live", self._live)
        get("/v2/health/ready", self._ready)
        for prefix in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
            get(prefix, self._model_metadata)
            get(prefix + "/ready", self._model_ready)
            post(prefix + "/infer", self._infer)
        post("/v2/repository/index", self._index)
        post("/v2/repository/models/{name}/load", self._load)
        post("/v2/repository/models/{name}/unload", self._unload)

    def close(self) -> None:
        self.inference.close()

    @web.middleware
    async def errors(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Under /v2, every error in the protocol's format: ours, and aiohttp's own (an unknown
        path, a wrong method)."""
        if not request.path.startswith("/v2"):
            return await handler(request)
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            self.state.metrics.refused.labels(
                "not_found" if exc.status == 404 else "bad_request"
            ).inc()
            hint = ""
            slashed = _SLASHED.fullmatch(request.path)
            if exc.status == 404 and slashed:  # the shelf's own spelling, ns/name
                hint = (
                    f"; a model is named namespace:name here ("
                    f"/v2/models/{slashed['ns'][:64]}:{slashed['name'][:64]}{slashed['rest'][:64]})"
                )
            return error(exc.status, f"{request.method} {request.path[:200]}: {exc.reason}{hint}")
        except Exception as exc:
            response, outcome = self._refusal(request, exc)
            self.state.metrics.refused.labels(outcome).inc()
            return response

    def _refusal(self, request: web.Request, exc: Exception) -> tuple[web.Response, str]:
        status, outcome = _status(exc)
        text = str(exc) or type(exc).__name__
        if isinstance(exc, HttpProcessingError | RequestPayloadError):
            reason = " ".join(str(getattr(exc, "message", "") or exc).split())[:200]
            text = f"the request body cannot be read: {reason}"
        what = f"{request.method} {request.path[:200]!r}"
        if outcome == "internal":
            _limited.log(
                logging.ERROR, f"internal/{type(exc).__name__}", "HTTP %s failed: %s", what, text,
                exc_info=exc,
            )  # fmt: skip
            text = "internal error; the daemon's log has the details"
        else:
            level = logging.WARNING if status >= 500 else logging.INFO
            _limited.log(
                level, f"refused/{outcome}", "HTTP %s refused: %s [%s]", what, text, outcome
            )
        if outcome == "store_unavailable":
            # the store's own message names buckets and endpoints: the log has it
            text = store_refusal(exc)
        return error(status, text), outcome

    # -- health and metadata ------------------------------------------------------------------

    async def _server_metadata(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"name": SERVER_NAME, "version": __version__, "extensions": list(EXTENSIONS)}
        )

    async def _live(self, request: web.Request) -> web.Response:
        return web.json_response({"live": True})

    async def _ready(self, request: web.Request) -> web.Response:
        """The same readiness as ``/readyz``: the store listed and the warm list placed."""
        ready = self.state.readiness()["ready"]
        return web.json_response({"live": True, "ready": ready}, status=200 if ready else 503)

    async def _model_metadata(self, request: web.Request) -> web.Response:
        info = await self.inference.resolve(
            request.match_info["name"], request.match_info.get("version")
        )
        return web.json_response(await self.inference.metadata(info))

    async def _model_ready(self, request: web.Request) -> web.Response:
        """Ready: the name resolves (so an inference can fetch and run it)."""
        info = await self.inference.resolve(
            request.match_info["name"], request.match_info.get("version")
        )
        return web.json_response({"name": protocol_name(info.key), "ready": True})

    # -- inference ----------------------------------------------------------------------------

    async def _infer(self, request: web.Request) -> web.Response:
        metrics = self.state.metrics
        started = time.perf_counter()
        outcome = "timeout"  # unless it ends otherwise: cancelled by the request's deadline
        try:
            limit = self.state.config.http_max_body
            slot = None
            try:
                info = await self.inference.resolve(
                    request.match_info["name"], request.match_info.get("version")
                )
                # admitted before the body is read: bodies held at once are bounded too (a
                # chunked body, of no declared length, counts what has arrived: four slow
                # uploads must not hold the whole budget with nothing sent)
                declared = request.content_length
                if request.headers.get("Content-Encoding", "identity").lower() != "identity":
                    declared = None  # its length is the compressed one: count what it inflates to
                slot = self.inference.admit(0 if declared is None else min(declared, limit))
                if declared is None:
                    body = await self._chunked_body(request, limit, slot)
                else:
                    body = await self._body(request, limit)
                head, binary = await self.inference.infer(
                    info, body, request.headers.get(HEADER_LENGTH), slot
                )
            except Exception as exc:
                response, outcome = self._refusal(request, exc)
                return response
            finally:
                if slot is not None:
                    self.inference.abandon(slot)
            outcome = "ok"
            if not binary:
                return web.Response(body=head, content_type="application/json")
            return web.Response(
                body=head + binary,
                headers={
                    HEADER_LENGTH: str(len(head)),
                    "Content-Type": "application/octet-stream",
                },
            )
        finally:
            request[OUTCOME] = outcome  # counted once written (http.py): a write may time out
            metrics.infer_seconds.observe(time.perf_counter() - started)

    async def _chunked_body(self, request: web.Request, limit: int, slot: Slot) -> bytes:
        """A body without a declared length, read as it arrives, each piece counted against
        the bodies' budget (``Inference.grow``) and the whole against ``limit``."""
        parts: list[bytes] = []
        total = 0
        async for chunk in request.content.iter_chunked(1 << 16):
            total += len(chunk)
            if total > limit:
                raise BodyTooLarge(
                    f"the request body is more than this server takes ({limit}, http_max_body)"
                )
            self.inference.grow(slot, len(chunk))
            parts.append(chunk)
        return b"".join(parts)

    @staticmethod
    async def _body(request: web.Request, limit: int, what: str = "http_max_body") -> bytes:
        """The request's body, refused before it is read when it says it is over ``limit``
        (a chunked body is cut at ``limit`` by aiohttp: the application's client_max_size);
        ``what`` names the limit in the refusal."""
        declared = request.content_length
        if declared is not None and declared > limit:
            raise BodyTooLarge(
                f"the request body is {declared} bytes, more than this server takes "
                f"({limit}, {what})"
            )
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            body = None
        if body is None or len(body) > limit:  # chunked, without a length to check first
            raise BodyTooLarge(f"the request body is more than this server takes ({limit}, {what})")
        return body

    # -- repository extension -----------------------------------------------------------------

    async def _parameters(self, request: web.Request) -> dict[str, Any]:
        """A repository request's optional JSON body (bounded): its fields, or {}."""
        body = await self._body(
            request, min(MAX_SMALL_BODY, self.state.config.http_max_body),
            "a repository request's parameters",
        )  # fmt: skip
        if not body.strip():
            return {}
        try:
            value = json.loads(body)
        except (ValueError, RecursionError):
            raise BadRequest("the request body is not valid JSON") from None
        if not isinstance(value, dict):
            raise BadRequest("the request body must be a JSON object")
        return value

    async def _index(self, request: web.Request) -> web.Response:
        fields = await self._parameters(request)
        ready = fields.get("ready", False)
        if not isinstance(ready, bool):
            raise BadRequest(f"ready must be true or false, got {ready!r:.40}")
        return web.json_response(self.inference.index(ready_only=ready))

    def _admin(self, request: web.Request, op: str) -> None:
        if not self.state.config.http_admin:
            raise AdminDisabled(
                f"repository {op} over HTTP is disabled on this daemon: HTTP has no peer "
                "credentials. Set http_admin = true (MODELSHELF_HTTP_ADMIN=true) to allow it, "
                "or use the admin socket (modelshelf pin / evict)"
            )

    async def _load(self, request: web.Request) -> web.Response:
        return await self._repository(request, "load")

    async def _unload(self, request: web.Request) -> web.Response:
        return await self._repository(request, "unload")

    async def _repository(self, request: web.Request, op: str) -> web.Response:
        name = request.match_info["name"]
        outcome = "not finished (cancelled at http_infer_timeout, or the daemon stopped)"
        try:
            self._admin(request, op)
            await self._parameters(request)
            info = await self.inference.resolve(name)
            if op == "load":
                tiers = await self.inference.load(info)
            else:
                tiers = self.inference.unload(info)
            outcome = f"ok, version {info.version}, tiers {'+'.join(tiers) or 'none'}"
            return web.json_response({})
        except Exception as exc:
            response, kind = self._refusal(request, exc)
            self.state.metrics.refused.labels(kind).inc()
            outcome = f"refused [{kind}]"
            return response
        finally:
            peer = request.remote or "?"
            audit.info(
                "http %s %r by %s: %s", op, name[:200], peer, outcome,
                extra={"op": f"http_{op}", "model": name[:200], "peer": peer, "outcome": outcome},
            )  # fmt: skip
