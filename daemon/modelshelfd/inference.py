"""Inference in the daemon: the Open Inference Protocol's models, served from the shelf's images.

A request takes a lease on the image exactly as a socket client's acquire does
(``Shelf.acquire``: L1, else the page cache, fetching at most once), maps the leased descriptor
read-only as a client does, builds the ``Model`` over the mapping and runs it in a bounded
thread pool; the lease is released when the thread is done with the mapping, even if the HTTP
request was abandoned meanwhile (a thread cannot be interrupted). At most ``http_infer_queue``
requests are admitted at once, queued or running: one more raises ``QueueFull`` at once.

What a model offers as the protocol's tensors (docs/protocol.md, "HTTP: Open Inference
Protocol"): outputs are named after the model's methods (``predict``, ``predict_proba``, ...);
inputs are one tensor ``[rows, features]`` (``[rows]`` of BYTES for a text model) or, for a
model with named features, one ``[rows]`` tensor per feature. Nothing here knows HTTP.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fnmatch
import logging
import mmap
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from modelshelf.errors import AccessDenied, InvalidModelName
from modelshelf.model import Model, load
from modelshelf.names import ModelRef, check_part, parse_ref
from modelshelf.store import RefInfo

from .config import Config
from .errors import Busy
from .oip import (
    MAX_ELEMENTS,
    InferRequest,
    Tensor,
    TensorError,
    check_response_size,
    encode_response,
    parse_request,
)
from .state import ServerState
from .tiers import TierName

log = logging.getLogger("modelshelfd.inference")

PLATFORM = "modelshelf"
INPUT = "input"  # the name the metadata gives the single input tensor (any name is taken)
# model methods served as output tensors, in the order the metadata lists them
METHODS = (
    "predict", "predict_proba", "predict_log_proba", "decision_function", "transform",
    "score_samples",
)  # fmt: skip
MAX_METADATA = 1024  # model metadata kept (by digest: images are immutable)
MAX_VERSIONS = 64  # versions a model's metadata lists (the latest ones)
MAX_INDEX = 100_000  # models one repository index lists
MAX_THREADS = 8  # the derived thread count's cap
BODY_BUDGET = 4  # request bodies of http_max_body bytes held at once by admitted requests

T = TypeVar("T")


class QueueFull(Busy):
    """Every inference slot (``http_infer_queue``) is taken."""


@dataclass
class Slot:
    """One admitted request: the body bytes it may hold, and whether a thread runs for it."""

    nbytes: int
    running: bool = False
    abandoned: bool = False
    freed: bool = False


def protocol_name(key: str) -> str:
    """``ns/name`` as the protocol names it: ``ns:name`` (a URL path segment)."""
    return key.replace("/", ":", 1)


def parse_name(name: str, version: str | None = None) -> ModelRef:
    """``ns:name`` (and a version from the URL) as a ModelRef; InvalidModelName otherwise."""
    namespace, sep, rest = name.partition(":")
    if not sep:
        raise InvalidModelName(
            f"model name {name[:140]!r} must be namespace:name (the shelf's ns/name with ':')"
        )
    check_part(namespace)
    check_part(rest, "name")
    if version is None or version == "":
        return ModelRef(namespace, rest, None)
    return parse_ref(f"{namespace}/{rest}@{version[:20]}")


class Inference:
    """Models resolved, leased, mapped and run for the HTTP endpoint (no HTTP in here)."""

    def __init__(self, state: ServerState, config: Config | None = None) -> None:
        """``config``: the configuration to size it by (threads, bodies held at once), the
        state's unless a reload builds the endpoint before it applies its configuration."""
        self.state = state
        cfg = config if config is not None else state.config
        threads = cfg.http_infer_threads or min(MAX_THREADS, os.cpu_count() or 1)
        self.threads = threads
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="modelshelfd-infer")
        self.admitted = 0  # requests holding a slot: reading, queued, acquiring or running
        self.body_bytes = 0  # bytes of request bodies admitted requests may hold
        self.body_budget = BODY_BUDGET * cfg.http_max_body
        self._metadata: collections.OrderedDict[str, dict[str, Any]] = collections.OrderedDict()

    @property
    def limit(self) -> int:
        """Requests admitted at once: ``http_infer_queue``, as reloaded (SIGHUP)."""
        return self.state.config.http_infer_queue

    def close(self) -> None:
        """Stop taking work; threads running finish (their leases are released on the loop
        while it runs, or go with the process)."""
        self.pool.shutdown(wait=False, cancel_futures=True)

    # -- names --------------------------------------------------------------------------------

    def allowed(self, ref: ModelRef) -> None:
        patterns = self.state.config.http_namespaces
        if not any(fnmatch.fnmatchcase(ref.namespace, p) for p in patterns):
            raise AccessDenied(
                f"namespace {ref.namespace!r} is not served over HTTP on this node "
                "(http_namespaces)"
            )

    async def resolve(self, name: str, version: str | None = None) -> RefInfo:
        ref = parse_name(name, version)
        self.allowed(ref)
        return await self.state.catalog.resolve(ref)

    def versions(self, key: str) -> list[str]:
        listed = self.state.catalog.versions.get(key) or []
        return [str(v) for v in listed[-MAX_VERSIONS:]]

    # -- running ------------------------------------------------------------------------------

    def admit(self, nbytes: int = 0) -> Slot:
        """A slot for one request whose body takes ``nbytes``, taken before the body is read:
        at most ``http_infer_queue`` requests, and at most ``BODY_BUDGET`` request bodies'
        worth of bytes (``http_max_body`` each), are admitted at once; beyond, QueueFull."""
        if self.admitted >= self.limit:
            self.state.shelf.stats["http_infer_queue_full"] += 1
            raise QueueFull(
                f"all {self.limit} inference slots are taken ({self.admitted} requests "
                f"admitted, {self.body_bytes} body bytes held, {self.threads} threads); retry "
                "later, or raise http_infer_queue"
            )
        self._check_bodies(nbytes)
        self.admitted += 1
        self.body_bytes += nbytes
        self.state.metrics.infer_in_progress.inc()
        return Slot(nbytes)

    def _check_bodies(self, nbytes: int) -> None:
        if self.body_bytes + nbytes > self.body_budget:
            self.state.shelf.stats["http_infer_queue_full"] += 1
            raise QueueFull(
                f"the request bodies being read already hold {self.body_bytes} of the "
                f"{self.body_budget} bytes this endpoint reads at once ({BODY_BUDGET} x "
                f"http_max_body); this one needs {nbytes} more: retry later, or send smaller "
                "requests (binary tensors are a quarter of JSON's size)"
            )

    def grow(self, slot: Slot, nbytes: int) -> None:
        """``nbytes`` more of a body read as it arrives (chunked: no length to admit it by);
        QueueFull if the bodies being read would hold more than their budget."""
        self._check_bodies(nbytes)
        self.body_bytes += nbytes
        slot.nbytes += nbytes

    def free(self, slot: Slot) -> None:
        """Give the slot back, unless a thread still uses it (then the thread's end does)."""
        if slot.freed or slot.running:
            return
        slot.freed = True
        self.admitted -= 1
        self.body_bytes -= slot.nbytes
        self.state.metrics.infer_in_progress.dec()

    async def run(self, info: RefInfo, work: Callable[[Model], T], slot: Slot | None = None) -> T:
        """``work(model)`` in a pool thread over a leased, read-only mapping of the image, in
        ``slot`` (or one of its own). The lease, and the slot once the caller has freed it, are
        given back when the thread is done, even if the caller was cancelled meanwhile."""
        own = slot is None
        held = self.admit() if slot is None else slot
        try:
            loop = asyncio.get_running_loop()
            started = loop.time()
            lease = await self.state.shelf.acquire(info)
            self.state.metrics.acquired(lease.found.value, loop.time() - started)
            copy = lease.copy
            try:
                future: Future[T] = self.pool.submit(_mapped, lease.fd, copy.size, work)
            except RuntimeError:  # the pool is shut down: the daemon is stopping
                self.state.shelf.release(lease)
                raise QueueFull("the daemon is shutting down") from None
            held.running = True

            def finished() -> None:
                self.state.shelf.release(lease)
                held.running = False
                if own or held.abandoned:
                    self.free(held)

            def done(_: Future[T]) -> None:  # in the pool's thread, or here if already done
                with contextlib.suppress(RuntimeError):  # the loop is closed: the process ends
                    loop.call_soon_threadsafe(finished)

            future.add_done_callback(done)
            return await asyncio.wrap_future(future)
        finally:
            if own:
                self.free(held)

    def abandon(self, slot: Slot) -> None:
        """The request is over (answered, refused or cancelled): free its slot now, or when
        its thread is done."""
        slot.abandoned = True
        self.free(slot)

    async def metadata(self, info: RefInfo) -> dict[str, Any]:
        """The model's metadata object (name, versions, platform, inputs, outputs)."""
        tensors = self._metadata.get(info.digest)
        if tensors is None:
            tensors = await self.run(info, describe)
            self._metadata[info.digest] = tensors
            while len(self._metadata) > MAX_METADATA:
                self._metadata.popitem(last=False)
        else:
            self._metadata.move_to_end(info.digest)
        return {
            "name": protocol_name(info.key),
            "versions": self.versions(info.key) or [str(info.version)],
            "platform": PLATFORM,
            **tensors,
        }

    async def infer(
        self, info: RefInfo, body: bytes, header_length: str | None, slot: Slot
    ) -> tuple[bytes, bytes]:
        """Answer an inference request (``oip.parse_request``'s arguments) with the response's
        JSON and binary parts; parsing, predicting and encoding all run in the pool."""
        name, version = protocol_name(info.key), str(info.version)
        limit = self.state.config.http_max_body

        def work(model: Model) -> tuple[bytes, bytes]:
            request = parse_request(body, header_length)
            outputs = infer(model, request, limit)
            return encode_response(name, version, request, outputs, limit)

        return await self.run(info, work, slot)

    # -- repository ---------------------------------------------------------------------------

    def index(self, ready_only: bool = False) -> list[dict[str, Any]]:
        """One row per model of the catalog (its latest version): READY when that version's
        image is on this node (L1 or L2), else UNAVAILABLE (the first inference fetches it)."""
        catalog, shelf = self.state.catalog, self.state.shelf
        patterns = self.state.config.http_namespaces
        rows = []
        for key, versions in sorted(catalog.versions.items()):
            if not versions:
                continue
            namespace, name = key.split("/", 1)
            if not any(fnmatch.fnmatchcase(namespace, p) for p in patterns):
                continue
            version = versions[-1]
            info = catalog.cached(ModelRef(namespace, name, version))
            here = info is not None and bool(shelf.where(info.digest))
            if ready_only and not here:
                continue
            row = {"name": protocol_name(key), "version": str(version)}
            if here:
                row["state"] = "READY"
            else:
                row.update(state="UNAVAILABLE", reason="not on this node: fetched at first use")
            rows.append(row)
            if len(rows) > MAX_INDEX:
                raise TensorError(
                    f"more than {MAX_INDEX} models to list; ask with ready: true, or use the "
                    "admin socket's names"
                )
        return rows

    async def load(self, info: RefInfo) -> list[str]:
        """Prefetch and pin (the admin socket's ``pin``); the tiers it is in."""
        shelf = self.state.shelf
        await shelf.ensure(info, request=False)
        await shelf.settle(info.digest)
        shelf.pin(info.digest, True)
        return [t.value for t in shelf.where(info.digest)]

    def unload(self, info: RefInfo) -> list[str]:
        """Unpin and evict from L1 and L2 (mappings in use stay valid); the tiers left."""
        shelf = self.state.shelf
        if info.digest not in shelf.entries:
            return []
        shelf.pin(info.digest, False)
        return [t.value for t in (TierName.L1, TierName.L2) if shelf.evict(info.digest, t)]


def _mapped(fd: int, size: int, work: Callable[[Model], T]) -> T:
    """In a pool thread: map the leased descriptor read-only, build the model, run ``work``;
    the mapping goes when its last view does (the lease is released after this returns)."""
    mapped = mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
    try:
        return work(load(mapped))
    finally:
        with contextlib.suppress(BufferError):  # a view still referenced: the GC unmaps it
            mapped.close()


# -- tensors <-> the model's methods (in pool threads) --------------------------------------------


def _manifest_input(model: Model) -> dict[str, Any]:
    schema = model.image.manifest.get("input") or {}
    return schema if isinstance(schema, dict) else {}


def methods(model: Model) -> list[str]:
    return [m for m in METHODS if hasattr(model, m)]


def default_outputs(model: Model) -> list[str]:
    offered = methods(model)
    if not offered:
        raise TensorError(
            f"this {model.kind!r} image predicts nothing (a tensor bundle); nothing to infer"
        )
    for name in ("predict", "transform"):
        if name in offered:
            return [name]
    return offered[:1]


def describe(model: Model) -> dict[str, Any]:
    """The metadata's inputs and outputs, with what the image's manifest knows."""
    schema = _manifest_input(model)
    kind = schema.get("type", "numeric")
    n = schema.get("n_features")
    features = n if isinstance(n, int) and not isinstance(n, bool) else -1
    if kind == "text":
        inputs = [{"name": INPUT, "datatype": "BYTES", "shape": [-1]}]
    elif kind == "tabular":
        names = schema.get("feature_names")
        strings = _category_columns(schema)
        strings = _string_columns(model) if strings is None else strings
        if isinstance(names, list) and strings is not None:
            inputs = [
                {"name": n, "datatype": "BYTES" if j in strings else "FP64", "shape": [-1]}
                for j, n in enumerate(names)
            ]
        else:
            inputs = [{"name": INPUT, "datatype": "BYTES", "shape": [-1, features]}]
    elif kind == "none":
        inputs = []
    else:
        inputs = [{"name": INPUT, "datatype": "FP64", "shape": [-1, features]}]
    classes: Any = None
    with contextlib.suppress(AttributeError):
        classes = model.classes_
    outputs = []
    for method in methods(model):
        datatype, shape = "FP64", [-1]
        if method == "predict" and classes is not None:
            if isinstance(classes, list):
                datatype, shape = _datatype(classes[0]), [-1, len(classes)]
            else:
                datatype = _datatype(classes)
        elif method in ("predict_proba", "predict_log_proba") and classes is not None:
            shape = [-1, -1 if isinstance(classes, list) else len(classes)]
        elif method == "decision_function" and classes is not None:
            if not isinstance(classes, list) and len(classes) > 2:
                shape = [-1, len(classes)]
        elif method == "transform":
            shape = [-1, -1]
        outputs.append({"name": method, "datatype": datatype, "shape": shape})
    if kind == "numeric" and 0 < features <= MAX_PROBE_FEATURES:
        outputs = _probed(model, features, outputs)
    return {"inputs": inputs, "outputs": outputs}


MAX_PROBE_FEATURES = 1 << 14  # a numeric model's outputs are read off one row of zeros


def _probed(model: Model, features: int, guessed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The outputs as an inference gives them: each method run once on a row of zeros (the
    labels' dtype, IsolationForest's and KMeans' integer labels, a multi-target regressor's
    columns). A method that answers a list (a multi-output classifier's probabilities) cannot
    be a tensor: it is left out, as inference refuses it; one that refuses zeros keeps the
    guess made from the manifest."""
    from .oip import datatype_of

    row = np.zeros((1, features))
    out = []
    for entry in guessed:
        try:
            value = getattr(model, entry["name"])(row)
        except Exception:  # zeros outside the model's domain (Box-Cox): the guess stands
            out.append(entry)
            continue
        if not isinstance(value, np.ndarray):
            continue  # a list of arrays: no tensor answers it
        try:
            datatype = datatype_of(value)
        except TensorError:
            datatype = "BYTES"
        out.append({"name": entry["name"], "datatype": datatype, "shape": [-1, *value.shape[1:]]})
    return out


def _category_columns(schema: dict[str, Any]) -> set[int] | None:
    """The columns the image keeps category tables for (a booster fitted on pandas
    ``category`` columns), or None without tables."""
    tables = schema.get("categories")
    if not isinstance(tables, list):
        return None
    return {t["column"] for t in tables if isinstance(t, dict) and isinstance(t.get("column"), int)}


def _string_columns(model: Model) -> set[int] | None:
    """The input columns a table model reads through an encoder (strings), where its first
    step says so (a column transformer's parts, CatBoost's categorical features); None when it
    does not tell."""
    root = getattr(model, "_executor", None)
    steps = getattr(root, "steps", None)
    first = steps[0] if isinstance(steps, list) and steps else root
    cats = getattr(first, "cat_columns", None)  # CatBoost's categorical features
    if isinstance(cats, np.ndarray):
        return {int(j) for j in cats.reshape(-1)}
    parts = getattr(first, "parts", None)
    if not isinstance(parts, list):
        return None
    out: set[int] = set()
    for part in parts:
        if getattr(part, "takes_objects", False):
            out.update(int(j) for j in np.asarray(getattr(part, "indices", ())).reshape(-1))
    return out


def _datatype(array: np.ndarray) -> str:
    from .oip import datatype_of

    try:
        return datatype_of(np.asarray(array))
    except TensorError:
        return "BYTES"


def infer(
    model: Model, request: InferRequest, limit: int | None = None
) -> list[tuple[str, np.ndarray]]:
    """Run the methods the request asks for (by default ``predict``, else ``transform``) on
    the input the request's tensors make; the outputs in the order asked. ``limit``: the
    response's bytes at most (http_max_body); a sparse output that could not fit is refused
    before it is made dense."""
    offered = methods(model)
    names = [r.name for r in request.outputs] if request.outputs else default_outputs(model)
    for name in names:
        if name not in offered:
            raise TensorError(
                f"this model has no output {name!r:.80}; it has {', '.join(offered) or 'none'}"
            )
    X = model_input(model, request.inputs)
    out = []
    for name in names:
        out.append((name, _as_output(getattr(model, name)(X), name, limit)))
    return out


def _as_output(value: Any, name: str, limit: int | None = None) -> np.ndarray:
    if isinstance(value, list | tuple):
        raise TensorError(
            f"{name} of this model gives one array per output (multi-output); the protocol "
            "takes one tensor per name: not supported over HTTP"
        )
    if hasattr(value, "toarray"):  # a sparse matrix (text vectorizers)
        rows, cols = value.shape
        if rows * cols > MAX_ELEMENTS:
            raise TensorError(f"{name} gives a {rows}x{cols} sparse matrix, too large to send")
        if limit is not None:
            # two bytes a value at least, whichever encoding is asked for ("0," in JSON)
            check_response_size(name, rows * cols, min(value.dtype.itemsize, 2), limit)
        value = value.toarray()
    if hasattr(value, "to_numpy"):  # a DataFrame (set_output(transform="pandas"))
        value = value.to_numpy()
    return np.asarray(value)


def model_input(model: Model, tensors: list[Tensor]) -> Any:
    """What the model's methods take, from the request's input tensors."""
    schema = _manifest_input(model)
    kind = schema.get("type", "numeric")
    if kind == "none":
        raise TensorError("this image is a tensor bundle: it takes no input")
    names = schema.get("feature_names")
    # one tensor named as a feature, of one column, is that feature's (the others missing,
    # unless it is the only one); any other single tensor is the whole [rows, features] input
    per_feature = (
        isinstance(names, list)
        and tensors[0].name in names
        and (tensors[0].array.ndim == 1 or tensors[0].array.shape[-1:] == (1,))
    )
    if len(tensors) == 1 and not per_feature:
        return _single(kind, tensors[0])
    if not isinstance(names, list):
        raise TensorError(
            f"this model was fitted without feature names: send one input tensor [rows, "
            f"features], not {len(tensors)}"
        )
    columns = _columns(tensors, names)
    if _category_columns(schema) is not None:
        return _category_frame(columns, names)
    if all(c.dtype == np.float32 for c in columns):
        # as a DataFrame of float32 columns reads: float32 (the scalers keep it), not float64
        return np.column_stack(columns)
    if all(c.dtype.kind in "biuf" for c in columns):
        return np.column_stack([c.astype(np.float64) for c in columns])
    if kind != "tabular":
        raise TensorError("this model takes numbers only: BYTES inputs are for text or tables")
    table = np.empty((len(columns[0]), len(columns)), dtype=object)
    for j, column in enumerate(columns):
        table[:, j] = column.astype(np.float64) if column.dtype.kind in "biuf" else column
    return table


def _category_frame(columns: list[np.ndarray], names: list[str]) -> Any:
    """A booster fitted on pandas ``category`` columns reads a DataFrame's categories through
    the image's tables: BYTES columns become ``category`` columns (pandas, if installed)."""
    try:
        import pandas as pd
    except ImportError:
        raise TensorError(
            "this model recodes pandas category columns: the daemon needs pandas installed to "
            "take its columns one by one"
        ) from None
    return pd.DataFrame(
        {
            name: pd.Categorical(column) if column.dtype.kind == "O" else column.astype(float)
            for name, column in zip(names, columns, strict=True)
        }
    )


def _single(kind: str, tensor: Tensor) -> Any:
    array = tensor.array
    if kind == "text":
        if tensor.datatype != "BYTES":
            raise TensorError(f"this text model takes BYTES documents, got {tensor.datatype}")
        if array.ndim == 2 and array.shape[1] == 1:
            array = array[:, 0]
        if array.ndim != 1:
            raise TensorError(
                f"this text model takes a [rows] tensor of documents, got shape "
                f"{list(tensor.shape)}"
            )
        return list(array)
    if kind == "numeric" and tensor.datatype == "BYTES":  # as the per-feature path refuses it
        raise TensorError(
            "this model takes numbers only: BYTES inputs are for text or tables; send FP64 "
            "(or another numeric datatype)"
        )
    if tensor.datatype == "BOOL":
        array = array.astype(np.float64)
    return array


def _columns(tensors: list[Tensor], names: list[str]) -> list[np.ndarray]:
    """The inputs as one 1-D array per feature, in the model's order."""
    given = {}
    rows = None
    for tensor in tensors:
        if tensor.name not in names:
            raise TensorError(
                f"input {tensor.name!r:.80} is not one of the model's features "
                f"({', '.join(names[:8])}{', ...' if len(names) > 8 else ''})"
            )
        column = tensor.array
        if column.ndim == 2 and column.shape[1] == 1:
            column = column[:, 0]
        if column.ndim != 1:
            raise TensorError(
                f"input {tensor.name!r}: one tensor per feature takes shape [rows] or "
                f"[rows, 1], got {list(tensor.shape)}"
            )
        if rows is None:
            rows = len(column)
        elif len(column) != rows:
            raise TensorError(f"input {tensor.name!r} has {len(column)} rows, the others {rows}")
        given[tensor.name] = column
    missing = [n for n in names if n not in given]
    if missing:
        raise TensorError(
            f"features missing from the inputs: {', '.join(missing[:8])}"
            f"{', ...' if len(missing) > 8 else ''} (one input tensor per feature, or a single "
            "[rows, features] tensor)"
        )
    return [given[n] for n in names]
