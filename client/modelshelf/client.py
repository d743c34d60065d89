"""``Client``: the application side of the shelf (synchronous; numpy and the standard library).

The client asks the node's daemon for a model over a Unix socket, receives a read-only
descriptor (SCM_RIGHTS), maps it ``PROT_READ`` and builds the ``Model`` over the mapping: no
copy. Models are cached per process; a cached "latest" model is returned without a round trip
while the daemon's board generation has not moved. A held model never needs the daemon again: a
daemon crash or restart is not an outage, and the next request reconnects by itself.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import socket as _socket
import struct
import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _paths, _wire
from ._names import parse_ref
from ._version import __version__
from .errors import (
    AccessDenied,
    DaemonUnavailable,
    ImageError,
    InvalidModelName,
    ModelNotFound,
    ProtocolError,
    ShelfError,
    StoreError,
)
from .image import Image
from .image._reader import map_readonly
from .model import Model

__all__ = ["Client"]

_ERRORS: dict[str, type[ShelfError] | type[ImageError]] = {
    "not_found": ModelNotFound,
    "access_denied": AccessDenied,
    "invalid_name": InvalidModelName,
    "bad_request": ProtocolError,
    "store_unavailable": StoreError,
    "image_error": ImageError,
}
_BOARD_SIZE = 4096
_BOARD_MAGIC = b"MSBOARD1"
_GENERATION = struct.Struct("<Q")
_AGENT = f"modelshelf/{__version__}"
Reply = tuple[dict[str, Any], list[int]]


@dataclass
class _Held:
    model: Model
    digest: str
    version: int
    generation: int
    epoch: int  # the connection its lease lives on
    fixed: bool  # an explicit version: immutable, never re-checked


class Client:
    """A connection to the node's shelf. Thread-safe; use one per process (or per thread).

    ``socket``: the daemon's client socket; default ``$MODELSHELF_SOCKET`` or the per-user
    runtime path (see ``modelshelf._paths``).
    """

    def __init__(self, socket: str | None = None, *, timeout: float = 60.0) -> None:
        self.socket_path = socket or _paths.default_socket()
        self.timeout = timeout
        self._lock = threading.RLock()
        self._sock: _socket.socket | None = None
        self._board: mmap.mmap | None = None
        self._epoch = 0
        self._pid = os.getpid()
        self._held: dict[str, _Held] = {}
        self._keys: dict[str, str] = {}  # reference as given -> canonical key
        # every Model this client built and someone still references, by digest
        self._models: weakref.WeakValueDictionary[str, Model] = weakref.WeakValueDictionary()
        self._ids = 0
        self.instance = ""

    # -- public surface -----------------------------------------------------------------------

    def model(self, ref: str) -> Model:
        """The model ``"ns/name"`` (latest) or ``"ns/name@7"``, mapped read-only."""
        # fast path, no lock (dict reads are atomic): a held model whose board is unchanged
        held = self._held.get(self._keys.get(ref, ""))
        if held is not None and self._pid == os.getpid():
            board = self._board
            if held.fixed or (
                board is not None and _GENERATION.unpack_from(board, 8)[0] == held.generation
            ):
                return held.model
        parsed = parse_ref(ref)
        key = str(parsed)
        if len(self._keys) < 65536:  # bounded: callers may build names dynamically
            self._keys[ref] = key
        with self._lock:
            self._check_fork()
            held = self._held.get(key)
            if held is not None and (
                parsed.version is not None or self._generation() == held.generation
            ):
                return held.model
            return self._acquire(key, held, fixed=parsed.version is not None)

    def tensors(self, ref: str) -> Mapping[str, np.ndarray]:
        """Every array of the model's image by name: read-only views over the mapping."""
        return self.model(ref).tensors

    def release(self, ref: str) -> None:
        """Drop this process's lease on ``ref``. The Model object stays usable while referenced
        (its mapping stays valid); the daemon may now evict the image from shared memory."""
        key = str(parse_ref(ref))
        with self._lock:
            self._check_fork()  # a forked child must never speak on its parent's connection
            held = self._held.pop(key, None)
            if held is None:
                raise ModelNotFound(f"{key} is not held by this client")
            if held.epoch == self._epoch and self._sock is not None:
                # a daemon that went away took the lease with it: nothing left to release
                with contextlib.suppress(DaemonUnavailable):
                    self._request({"op": "release", "digest": held.digest}, retry=False)

    def close(self) -> None:
        """Close the connection (the daemon drops every lease). Models stay usable."""
        with self._lock:
            self._check_fork()
            self._held.clear()
            self._disconnect()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "connected" if self._sock is not None else "disconnected"
        return f"<modelshelf.Client {self.socket_path} {state}, {len(self._held)} held>"

    # -- internals ----------------------------------------------------------------------------

    def _acquire(self, key: str, held: _Held | None, *, fixed: bool) -> Model:
        try:
            generation = self._generation_connected()
            request: dict[str, Any] = {"op": "acquire", "model": key}
            if held is not None and held.epoch == self._epoch:
                request["have"] = held.digest  # if unchanged: no new lease, no descriptor
            reply, fds = self._request(request)
        except (DaemonUnavailable, StoreError):
            if held is not None:
                # the daemon or its store is away; the copy we hold is still valid
                return held.model
            raise
        if reply.get("unchanged") and held is not None:
            _wire.close_fds(fds)
            held.generation = generation
            return held.model
        try:
            if len(fds) != 1:
                raise ProtocolError(f"acquire reply carried {len(fds)} descriptors, expected 1")
            try:
                digest, version = str(reply["digest"]), int(reply["version"])
                size = int(reply["size"])
                mapped = map_readonly(fds[0], size)
            except (KeyError, ValueError, TypeError, OSError) as exc:
                raise ProtocolError(f"cannot map the image the daemon sent: {exc}") from exc
            finally:
                _wire.close_fds(fds)
            # the same image under another name, or after a reconnect: keep one object
            model = self._models.get(digest) or Model(Image(mapped, owner=mapped))
            self._models[digest] = model
        except BaseException:
            # the daemon took a lease for this reply: give it back, or it lives as long as
            # the connection
            if isinstance(reply.get("digest"), str):
                with contextlib.suppress(ShelfError):
                    self._request({"op": "release", "digest": reply["digest"]}, retry=False)
            raise
        if held is not None and held.epoch == self._epoch and held.digest != digest:
            # a newer version replaces the cached one; the old Model object stays valid
            with contextlib.suppress(DaemonUnavailable):
                self._request({"op": "release", "digest": held.digest}, retry=False)
        self._held[key] = _Held(model, digest, version, generation, self._epoch, fixed)
        return model

    def _generation(self) -> int:
        board = self._board
        return -1 if board is None else _GENERATION.unpack_from(board, 8)[0]

    def _generation_connected(self) -> int:
        if self._sock is None:
            self._connect()
        return self._generation()

    def _check_fork(self) -> None:
        if os.getpid() != self._pid:  # the parent's connection and leases are not ours
            self._pid = os.getpid()
            self._held.clear()
            self._disconnect()

    def _connect(self) -> None:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
            hello = {"op": "hello", "protocol": _wire.PROTOCOL_VERSION, "client": _AGENT}
            # refused (e.g. busy): the daemon may have said why before closing
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                _wire.send(sock, hello)
            reply, fds = _wire.recv(sock)
        except (OSError, EOFError, ProtocolError) as exc:
            sock.close()
            raise self._unavailable(exc) from exc
        try:
            self._raise_for(reply)
            if len(fds) != 1:
                raise ProtocolError(f"hello reply carried {len(fds)} descriptors, expected 1")
            board = mmap.mmap(fds[0], _BOARD_SIZE, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
            if board[:8] != _BOARD_MAGIC:
                raise ProtocolError("the daemon's board does not start with its magic")
        except BaseException:
            sock.close()
            raise
        finally:
            _wire.close_fds(fds)
        self._sock, self._board = sock, board
        self._epoch += 1
        self.instance = str(reply.get("instance", ""))

    def _disconnect(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock = None
        self._board = None  # other threads' readers hold no views; GC unmaps it

    def _request(
        self, message: dict[str, Any], *, retry: bool = True
    ) -> tuple[dict[str, Any], list[int]]:
        """Send one request and wait for its reply; reconnect once on a broken connection."""
        for attempt in (0, 1):
            if self._sock is None:
                self._connect()
            assert self._sock is not None
            self._ids += 1
            try:
                _wire.send(self._sock, {**message, "id": self._ids})
                reply, fds = _wire.recv(self._sock)
            except (OSError, EOFError) as exc:
                self._disconnect()
                if attempt or not retry:
                    raise self._unavailable(exc) from exc
                continue
            except ProtocolError:
                self._disconnect()
                raise
            try:
                self._raise_for(reply)
            except BaseException:
                _wire.close_fds(fds)
                raise
            return reply, fds
        raise AssertionError("unreachable")

    def _raise_for(self, reply: dict[str, Any]) -> None:
        if reply.get("ok") is True:
            return
        code = str(reply.get("error", "internal"))
        message = str(reply.get("message", "the daemon gave no message"))
        raise _ERRORS.get(code, ShelfError)(f"{message} [{code}]")

    def _unavailable(self, exc: BaseException) -> DaemonUnavailable:
        return DaemonUnavailable(
            f"no modelshelf daemon answers on {self.socket_path} ({exc}); start one with "
            "'modelshelfd', or point MODELSHELF_SOCKET (or Client(socket=...)) at its socket"
        )
