"""``Client``: the application side of the shelf (synchronous; numpy and the standard library).

The client asks the node's daemon for a model over a Unix socket, receives a read-only
descriptor (SCM_RIGHTS) of a shared-memory segment or of a file in the daemon's page-cache tier,
maps it ``PROT_READ`` and builds the ``Model`` over the mapping: no copy.

Memory is bounded. The client keeps the models it was asked for in a least-recently-used set,
bounded by bytes and by count (``max_held_bytes``, ``max_held_models``; by default what the
daemon advertises). A held model is returned without a round trip while the daemon's board
says nothing changed for it: neither its own model's change counter nor the board's epoch moved
(``modelshelf.board``; a daemon too old for per-model counters has one generation for every
model). Each mapping holds exactly one lease, and the lease ends with the
mapping: when a model leaves the held set and the application holds no reference to it, the
mapping is unmapped and its release is queued (finalizers never block) and sent with the next
request, or by a small flusher thread if none comes. When the daemon raises pressure on the
board, the client drops the held models idle for ``PRESSURE_IDLE`` seconds at its next call.

A held model never needs the daemon again: a daemon crash or restart is not an outage, and the
next request reconnects by itself.
"""

from __future__ import annotations

import collections
import contextlib
import os
import select
import socket as _socket
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import paths as _paths
from . import trust as _trust
from . import wire as _wire
from ._version import __version__
from .board import PRESSURE_AT, BoardView
from .errors import (
    AccessDenied,
    DaemonUnavailable,
    ModelNotFound,
    ProtocolError,
    ShelfError,
    StoreError,
    for_code,
)
from .image import MAX_IMAGE_SIZE, Image
from .image._reader import map_readonly
from .model import Model
from .names import parse_ref
from .sizes import FORM, parse_size

__all__ = ["Client"]

# the variables a Client reads (docs/configuration.md, "Client settings")
ENVIRONMENT = (
    "MODELSHELF_SOCKET",
    "MODELSHELF_MAX_HELD_BYTES",
    "MODELSHELF_MAX_HELD_MODELS",
    "MODELSHELF_TIMEOUT",
    "MODELSHELF_DAEMON_UID",
)

_AGENT = f"modelshelf/{__version__}"
_PRESSURE = PRESSURE_AT >> 3  # the pressure counter's index in BoardView.words

# Used when neither the caller, the environment nor the daemon's hello says otherwise.
DEFAULT_TIMEOUT = 10.0  # seconds: a web request's patience, not a cold multi-GB fetch's
DEFAULT_HELD_BYTES = 256 << 20
DEFAULT_HELD_MODELS = 256
PRESSURE_IDLE = 1.0  # seconds: under pressure, held models unused this long are dropped
MAX_RELEASES = 256  # digests released by one message (the daemon takes up to 512)
RECONNECTS = 1  # a request whose connection broke is sent again once, on a new connection
FLUSH_DELAY = 0.05  # seconds the flusher waits for the application's next request to carry them
WATCH_INTERVAL = 1.0  # seconds between the flusher's looks at the connection (Client._watch)
# the daemon closed its end, or the connection broke (POLLRDHUP: Linux's peer shutdown)
_GONE = select.POLLHUP | select.POLLERR | getattr(select, "POLLRDHUP", 0)


class _Lease:
    """The lease behind one mapping: released when the mapping's finalizer queues it, if the
    connection it was taken on (``epoch``) is still the current one."""

    __slots__ = ("digest", "epoch")

    def __init__(self, digest: str, epoch: int) -> None:
        self.digest, self.epoch = digest, epoch


@dataclass(slots=True)
class _Held:
    model: Model
    digest: str
    version: int
    size: int
    slot: int  # the index of its model's counter on the board (BoardView.slot)
    stamp: tuple[int, int, int]  # what the board said before the daemon answered
    fixed: bool  # an explicit version: re-checked only to learn that it was removed
    last_use: float


class _Releases:
    """Leases whose mappings ended. Filled by finalizers (append only: never blocks), drained
    under the client's lock."""

    def __init__(self) -> None:
        self.items: collections.deque[_Lease] = collections.deque()
        self.wake = threading.Event()

    def put(self, lease: _Lease) -> None:
        self.items.append(lease)
        self.wake.set()


class Client:
    """A connection to the node's shelf. Thread-safe; use one per process (or per thread).

    ``socket``: the daemon's client socket; default ``$MODELSHELF_SOCKET`` or the per-user
    runtime path (see ``modelshelf.paths``). ``max_held_bytes`` and ``max_held_models`` bound
    the models kept for reuse (default ``$MODELSHELF_MAX_HELD_BYTES`` and
    ``$MODELSHELF_MAX_HELD_MODELS``, else what the daemon advertises). A model larger than
    ``max_held_bytes`` is returned but not kept: its lease lasts as long as the caller holds it.
    ``daemon_uid``: the uid the daemon must run as (default ``$MODELSHELF_DAEMON_UID``, else
    root, this process's uid or the owner of the socket's directory: ``modelshelf.trust``); a
    socket where another uid listens raises UntrustedDaemon before anything is sent.
    """

    def __init__(
        self,
        socket: str | None = None,
        *,
        timeout: float | None = None,
        max_held_bytes: int | None = None,
        max_held_models: int | None = None,
        daemon_uid: int | None = None,
    ) -> None:
        self.socket_path = socket or _paths.default_socket()
        self.timeout = _timeout(timeout)
        if daemon_uid is None:
            daemon_uid = _trust.daemon_uid_from_env()
        elif isinstance(daemon_uid, bool) or not isinstance(daemon_uid, int) or daemon_uid < 0:
            raise ValueError(f"daemon_uid must be a non-negative integer, got {daemon_uid!r}")
        self.daemon_uid = daemon_uid
        if max_held_bytes is None:
            max_held_bytes = _env_size("MODELSHELF_MAX_HELD_BYTES")
        if max_held_models is None:
            max_held_models = _env_size("MODELSHELF_MAX_HELD_MODELS", suffixes=False)
        for name, value in (
            ("max_held_bytes", max_held_bytes),
            ("max_held_models", max_held_models),
        ):
            if value is not None and not (_count(value) or value == 0):
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        self._chosen = (max_held_bytes, max_held_models)  # None: take the daemon's advice
        self.max_held_bytes = DEFAULT_HELD_BYTES if max_held_bytes is None else max_held_bytes
        self.max_held_models = DEFAULT_HELD_MODELS if max_held_models is None else max_held_models
        self._lock = threading.RLock()
        _CLIENTS.add(self)
        self._sock: _socket.socket | None = None
        self._board: BoardView | None = None
        self._epoch = 0
        self._pid = os.getpid()
        self._held: collections.OrderedDict[str, _Held] = collections.OrderedDict()
        self._held_bytes = 0
        self._keys: dict[str, str] = {}  # reference as given -> canonical key
        # every Model this client built and someone still references, by digest, and the
        # lease of the mapping under it
        self._models: weakref.WeakValueDictionary[str, Model] = weakref.WeakValueDictionary()
        self._leases: dict[str, _Lease] = {}
        self._releases = _Releases()
        self._flusher: threading.Thread | None = None
        self._pressure = 0
        self._closes = 0  # close() calls: an AsyncClient's waiting worker must not reconnect
        self._ids = 0
        self.instance = ""
        self.trims = 0  # held models dropped because the daemon raised pressure
        # where the last model() call was served from: "held" (no round trip), "checked" (a
        # round trip confirmed the held copy), "l1" (shared memory), "l2" (local disk, the
        # page cache), "l3" (fetched from the object store)
        self.last_source = ""

    # -- public surface -----------------------------------------------------------------------

    def model(self, ref: str) -> Model:
        """The model ``"ns/name"`` (latest) or ``"ns/name@7"``, mapped read-only.

        One client speaks to the daemon one request at a time: a call waits for the requests
        of other threads before its own, up to ``timeout`` (DaemonUnavailable beyond), so it
        takes at most about twice ``timeout``."""
        return self._model(ref, None)

    def _model(self, ref: str, closes: int | None) -> Model:
        """``model``; ``closes``: the count of ``close`` calls when the caller asked (an
        AsyncClient's worker thread): a close since then refuses, never reconnects."""
        model = self.held_model(ref)
        if model is not None:
            return model
        parsed = parse_ref(ref)
        key = str(parsed)
        if len(self._keys) < 65536:  # bounded: callers may build names dynamically
            self._keys[ref] = key
        if not self._lock.acquire(timeout=self.timeout):
            raise DaemonUnavailable(
                f"{ref}: this client's other requests held its connection for more than "
                f"{self.timeout:g} s (the daemon may be stuck or fetching a large image "
                "cold); retry, or use a Client per thread for independent requests"
            )
        try:
            if closes is not None and closes != self._closes:
                raise DaemonUnavailable(f"{ref}: the client was closed while this request waited")
            self._check_fork()
            self._trim_if_pressed()
            held = self._held.get(key)
            if held is not None and _unchanged(self._board, held):
                held.last_use = time.monotonic()
                self._held.move_to_end(key)
                self.last_source = "held"
                return held.model
            return self._acquire(key, parsed.key, held, fixed=parsed.version is not None)
        finally:
            self._lock.release()

    def held_model(self, ref: str) -> Model | None:
        """The model if this process holds it and the board says it is still current: no
        round trip, no blocking (the lock only tried, what ``AsyncClient`` answers on the
        event loop); None otherwise (``model`` then asks the daemon)."""
        # dict reads are atomic: a held model whose board is unchanged
        key = self._keys.get(ref, "")
        held = self._held.get(key)
        if held is None or self._pid != os.getpid():
            return None
        board = self._board
        if board is None:
            fresh = held.fixed
        else:
            fresh = board.words[_PRESSURE] == self._pressure and _unchanged(board, held)
        if not fresh:
            return None
        held.last_use = time.monotonic()
        # the held set's order is changed under the lock only: a thread trimming it iterates
        # it (an OrderedDict moved meanwhile raises); busy, the order waits for the next call
        if self._lock.acquire(blocking=False):
            try:
                with contextlib.suppress(KeyError):  # another thread dropped it meanwhile
                    self._held.move_to_end(key)
            finally:
                self._lock.release()
        self.last_source = "held"
        return held.model

    def tensors(self, ref: str) -> Mapping[str, np.ndarray]:
        """Every array of the model's image by name: read-only views over the mapping."""
        return self.model(ref).tensors

    def release(self, ref: str) -> bool:
        """Stop keeping ``ref`` for reuse; False if it was not kept (never asked for, or
        already dropped by the bounds). Its lease ends with its mapping: at once if nothing
        else references the Model, else when the application lets go of it."""
        key = str(parse_ref(ref))
        with self._lock:
            self._check_fork()  # a forked child must never speak on its parent's connection
            kept = key in self._held
            self._drop(key)
            self._flush_locked()  # what ended now (or earlier) reaches the daemon now
            return kept

    def held(self) -> dict[str, int]:
        """What this client keeps for reuse: {"models", "bytes", "max_models", "max_bytes"}."""
        return {
            "models": len(self._held),
            "bytes": self._held_bytes,
            "max_models": self.max_held_models,
            "max_bytes": self.max_held_bytes,
        }

    def close(self) -> None:
        """Close the connection (the daemon drops every lease). Models stay usable."""
        with self._lock:
            self._closes += 1
            self._check_fork()
            self._held.clear()
            self._held_bytes = 0
            self._disconnect()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __reduce__(self) -> Any:
        raise TypeError(
            "a modelshelf Client is a connection to the daemon: it cannot be pickled or "
            "copied; create one in each process (a forked child may keep using its "
            "parent's) and send model references ('ns/name@version') between processes"
        )

    def __repr__(self) -> str:
        state = "connected" if self._sock is not None else "disconnected"
        return (
            f"<modelshelf.Client {self.socket_path} {state}, {len(self._held)} held "
            f"({self._held_bytes} of {self.max_held_bytes} bytes)>"
        )

    # -- internals: the held set ----------------------------------------------------------------

    def _hold(self, key: str, held: _Held) -> None:
        if key in self._held:
            self._drop(key)
        if held.size > self.max_held_bytes or self.max_held_models == 0:
            return  # returned, not kept: its lease lasts as long as the caller holds it
        self._held[key] = held
        self._held_bytes += held.size
        while self._held_bytes > self.max_held_bytes or len(self._held) > self.max_held_models:
            self._drop(next(iter(self._held)))  # least recently used first

    def _drop(self, key: str) -> None:
        held = self._held.pop(key, None)
        if held is not None:
            self._held_bytes -= held.size

    def _trim_if_pressed(self) -> None:
        board = self._board
        if board is None:
            return
        pressure = board.pressure()
        if pressure == self._pressure:
            return
        self._pressure = pressure
        idle = time.monotonic() - PRESSURE_IDLE
        for key in [k for k, h in self._held.items() if h.last_use < idle]:
            self._drop(key)
            self.trims += 1

    # -- internals: leases ----------------------------------------------------------------------

    def _ended(self) -> list[str]:
        """Digests of the leases whose mappings ended on the current connection (one item per
        lease), drained from the queue."""
        digests = []
        items = self._releases.items
        while items:
            lease = items.popleft()
            if self._leases.get(lease.digest) is lease:
                del self._leases[lease.digest]
            if lease.epoch == self._epoch and self._sock is not None:
                digests.append(lease.digest)
        return digests

    def _flush_locked(self) -> None:
        digests = self._ended()
        while digests:
            batch, digests = digests[:MAX_RELEASES], digests[MAX_RELEASES:]
            # a daemon that went away took the leases with it: nothing left to release
            with contextlib.suppress(ShelfError):
                self._request({"op": "release", "digests": batch}, retry=False)

    def _flush(self) -> None:
        with self._lock:
            if os.getpid() == self._pid:
                self._flush_locked()

    def _start_flusher(self) -> None:
        if self._flusher is None or not self._flusher.is_alive():
            self._flusher = threading.Thread(
                target=_flush_forever,
                args=(weakref.ref(self), self._releases),
                name="modelshelf-release",
                daemon=True,
            )
            self._flusher.start()

    def _map(self, digest: str, fd: int, size: int) -> Model:
        """The Model over ``digest``: the one this process already maps (the extra lease the
        daemon just granted is given back), or a new mapping of ``fd`` with its own lease."""
        model = self._models.get(digest)
        lease = self._leases.get(digest)
        if model is not None and lease is not None:
            if lease.epoch == self._epoch:  # one lease per mapping: return the extra one
                self._releases.put(_Lease(digest, self._epoch))
            else:  # mapped under a previous connection, whose leases went with it
                lease.epoch = self._epoch
            return model
        try:
            mapped = map_readonly(fd, size)
        except (ValueError, OSError, OverflowError) as exc:
            shortage = _wire.local_shortage("cannot map the image the daemon sent", exc)
            raise shortage or ProtocolError(f"cannot map the image the daemon sent: {exc}") from exc
        lease = _Lease(digest, self._epoch)
        weakref.finalize(mapped, self._releases.put, lease)
        self._leases[digest] = lease
        model = Model(Image(mapped, owner=mapped))
        self._models[digest] = model
        self._start_flusher()
        return model

    # -- internals: requests --------------------------------------------------------------------

    def _acquire(self, key: str, name: str, held: _Held | None, *, fixed: bool) -> Model:
        """Ask the daemon for ``key``; ``name`` (its ``ns/name``) picks its counter on the
        board. The board is read before the request: a change the daemon makes while it
        answers leaves the stamp behind, and costs one more round trip, never a stale copy."""
        try:
            if self._sock is None or self._board is None:  # never, or no longer, connected
                self._disconnect()
                self._connect()
            board = self._board
            assert board is not None
            slot = board.slot(name)
            stamp = board.stamp(slot)
            request: dict[str, Any] = {"op": "acquire", "model": key}
            lease = self._leases.get(held.digest) if held is not None else None
            if lease is not None and lease.epoch == self._epoch:
                request["have"] = held.digest  # type: ignore[union-attr]
            ended = self._ended()
            if len(ended) > MAX_RELEASES:
                self._request({"op": "release", "digests": ended[MAX_RELEASES:]}, retry=False)
            if ended:
                request["release"] = ended[:MAX_RELEASES]
            reply, fds = self._request(request)
        except (DaemonUnavailable, StoreError):
            if held is not None:
                # the daemon or its store is away; the copy we hold is still valid
                self.last_source = "held"
                return held.model
            raise
        except ModelNotFound:
            if held is not None:  # removed from the store: no longer served, not even held
                self._drop(key)
            raise
        if reply.get("unchanged") and held is not None:
            _wire.close_fds(fds)
            held.slot, held.stamp = slot, stamp
            held.last_use = time.monotonic()
            self._held.move_to_end(key)
            self.last_source = "checked"
            return held.model
        try:
            if len(fds) != 1:
                raise ProtocolError(f"acquire reply carried {len(fds)} descriptors, expected 1")
            try:
                digest, version = str(reply["digest"]), int(reply["version"])
                size = int(reply["size"])
                source = str(reply.get("tier", ""))
            except (KeyError, ValueError, TypeError) as exc:
                raise ProtocolError(f"malformed acquire reply: {exc}") from exc
            if not 0 < size <= MAX_IMAGE_SIZE:
                raise ProtocolError(
                    f"malformed acquire reply: size {size} is not in 1..{MAX_IMAGE_SIZE}"
                )
            model = self._map(digest, fds[0], size)
        except BaseException:
            # the daemon took a lease for this reply: give it back, or it lives as long as
            # the connection
            if isinstance(reply.get("digest"), str):
                with contextlib.suppress(ShelfError):
                    self._request({"op": "release", "digest": reply["digest"]}, retry=False)
            raise
        finally:
            _wire.close_fds(fds)
        now = time.monotonic()
        self._hold(key, _Held(model, digest, version, size, slot, stamp, fixed, now))
        self.last_source = source
        return model

    def _forked(self) -> None:
        """In a child just forked (``os.register_at_fork``): a new lock (another thread of the
        parent may have held this one: the child would wait for it forever), and none of the
        parent's connection, leases or held models (``_check_fork``). The inherited socket is
        closed at once: the daemon sees the parent's connection end when the parent does."""
        self._lock = threading.RLock()
        self._check_fork()

    def _watch(self) -> None:
        """The flusher, every WATCH_INTERVAL: a daemon that went away without a word (kill -9,
        OOM) never moves its board again, and a held "latest" model would be served as it is
        forever, whatever a new daemon has. End of file on the connection (the daemon exited,
        or closed an idle connection and the leases with it) unhooks the board: the next
        ``model()`` of a held model asks again, on a new connection."""
        sock = self._sock
        if sock is None or self._pid != os.getpid():
            return
        # poll, never recv: the socket has a timeout, and a recv would wait that long first
        poller = select.poll()
        try:
            poller.register(sock, _GONE | select.POLLIN)
            events = poller.poll(0)
        except (OSError, ValueError):  # closed under us
            return
        if not events or not events[0][1] & _GONE:
            return  # nothing, or a reply on its way: alive
        if self._sock is sock:
            self._board = None

    def _check_fork(self) -> None:
        if os.getpid() != self._pid:  # the parent's connection and leases are not ours
            self._pid = os.getpid()
            self._held.clear()
            self._held_bytes = 0
            self._leases.clear()
            # a fresh queue: the parent's mappings' finalizers keep feeding the old one (its
            # leases are not ours), and its event may have been mid-use in another thread
            self._releases = _Releases()
            self._flusher = None  # threads do not survive fork
            self._disconnect()
            self._epoch += 1  # mappings inherited from the parent hold no lease of ours

    def _connect(self) -> None:
        try:
            sock = _wire.connect(self.socket_path, self.timeout)
        except TimeoutError as exc:  # never accepted: not "accepted but did not answer"
            raise DaemonUnavailable(
                f"the daemon on {self.socket_path} did not accept the connection within "
                f"{self.timeout:g} s ({exc}): it may be overloaded or flooded with connections"
            ) from exc
        except OSError as exc:
            raise self._unavailable(exc) from exc
        try:
            _trust.check_daemon(sock, self.socket_path, self.daemon_uid)
        except BaseException:
            sock.close()
            raise
        try:
            hello = {"op": "hello", "protocol": _wire.PROTOCOL_VERSION, "client": _AGENT}
            # refused (e.g. busy): the daemon may have said why before closing
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                _wire.send(sock, hello)
            reply, fds = _wire.recv(sock)
        except (OSError, EOFError, ProtocolError) as exc:
            sock.close()
            raise self._unavailable(exc) from exc
        except BaseException:  # interrupted: the socket is not kept
            sock.close()
            raise
        try:
            self._raise_for(reply)
            if reply.get("socket") == "admin":
                raise DaemonUnavailable(
                    f"{self.socket_path} is the daemon's admin socket; clients connect to its "
                    "client socket ('socket' in the daemon's configuration): point "
                    "MODELSHELF_SOCKET (or Client(socket=...)) at that one"
                )
            if len(fds) != 1:
                raise ProtocolError(f"hello reply carried {len(fds)} descriptors, expected 1")
            board = BoardView(fds[0])
        except BaseException:
            sock.close()
            raise
        finally:
            _wire.close_fds(fds)
        self._sock, self._board = sock, board
        self._epoch += 1
        self._pressure = board.pressure()
        self.instance = str(reply.get("instance", ""))
        advised = (reply.get("held_bytes"), reply.get("held_models"))
        if self._chosen[0] is None and _count(advised[0]):
            self.max_held_bytes = advised[0]  # type: ignore[assignment]
        if self._chosen[1] is None and _count(advised[1]):
            self.max_held_models = advised[1]  # type: ignore[assignment]
        # The flusher starts with the connection, not with the first mapping: starting a thread
        # waits until the new thread runs, which on a busy node took milliseconds of the first
        # acquire (bench/peers.py, load + first prediction through the daemon).
        self._start_flusher()

    def _disconnect(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock = None
        self._board = None  # other threads' readers hold no views; GC unmaps it

    def _request(
        self, message: dict[str, Any], *, retry: bool = True
    ) -> tuple[dict[str, Any], list[int]]:
        """Send one request and wait for its reply; reconnect once on a broken connection."""
        for attempt in range(1 + RECONNECTS):
            if self._sock is None:
                self._connect()
            assert self._sock is not None
            self._ids += 1
            if attempt:  # leases of the broken connection went with it: nothing to release
                message.pop("release", None)
            try:
                _wire.send(self._sock, {**message, "id": self._ids})
                reply, fds = _wire.recv(self._sock)
            except (OSError, EOFError) as exc:
                self._disconnect()
                # a daemon that does not answer in time is not asked twice: the caller waited
                if attempt == RECONNECTS or not retry or isinstance(exc, TimeoutError):
                    raise self._unavailable(exc) from exc
                continue
            except BaseException:
                # a protocol error, or an exception that interrupted the wait (Ctrl-C, a signal
                # handler's timeout): the reply may still come, and the next request on this
                # connection would read it as its own
                self._disconnect()
                raise
            if reply.get("id") != self._ids:  # never an answer to another request
                _wire.close_fds(fds)
                self._disconnect()
                raise ProtocolError(
                    f"the daemon answered request {reply.get('id')!r:.20} where {self._ids} was "
                    "asked; the connection is dropped and the next call reconnects"
                )
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
        raise for_code(code)(f"{message} [{code}]")

    def _unavailable(self, exc: BaseException) -> ShelfError:
        """The error that says what really went wrong with the socket."""
        path = self.socket_path
        if isinstance(exc, PermissionError):
            try:
                st = os.stat(path)
                found = f"mode {st.st_mode & 0o777:o}, owner uid {st.st_uid}"
            except OSError:
                found = "its directory is not searchable"
            return AccessDenied(
                f"permission denied on the daemon's socket {path} ({found}; this process runs "
                f"as uid {os.getuid()}); the daemon's socket_mode and the directory's "
                "permissions decide who may connect"
            )
        if isinstance(exc, TimeoutError):
            return DaemonUnavailable(
                f"the daemon on {path} accepted the connection but did not answer within "
                f"{self.timeout:g} s: it may be overloaded or stuck; a large image fetched cold "
                "may need a longer MODELSHELF_TIMEOUT (or Client(timeout=...))"
            )
        return DaemonUnavailable(
            f"no modelshelf daemon answers on {path} ({exc}); start one with "
            "'modelshelfd', or point MODELSHELF_SOCKET (or Client(socket=...)) at its socket"
        )


_CLIENTS: weakref.WeakSet[Client] = weakref.WeakSet()  # for the fork hook below


def _after_fork_in_child() -> None:
    for client in list(_CLIENTS):
        client._forked()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _unchanged(board: BoardView | None, held: _Held) -> bool:
    """Does ``board`` still say what it said when ``held`` was last confirmed?"""
    if board is None:
        return False
    words = board.words  # BoardView.stamp, inlined: this is every held model's check
    return (board.serial, words[board.at], words[held.slot]) == held.stamp


def _timeout(value: float | None) -> float:
    if value is None:
        return _wire.seconds_from_env("MODELSHELF_TIMEOUT", DEFAULT_TIMEOUT)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 < value < _wire.MAX_TIMEOUT
    ):
        raise ValueError(
            f"the timeout must be a number of seconds above 0 and below "
            f"{_wire.MAX_TIMEOUT:.0f}, like 10 or 2.5, got {value!r}"
        )
    return float(value)


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _env_size(name: str, *, suffixes: bool = True) -> int | None:
    """``MODELSHELF_MAX_HELD_BYTES=268435456``, ``256M`` or ``1.5G``, as the daemon reads its
    sizes (``modelshelf.sizes``); unset or empty: None."""
    raw = os.environ.get(name, "")
    if not raw:
        return None
    if not suffixes:
        if not (raw.strip().isascii() and raw.strip().isdigit()):
            raise ValueError(f"{name} must be an integer like 256, got {raw!r}")
        return int(raw)
    try:
        return parse_size(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be {FORM}: {exc}") from None


def _flush_forever(client_ref: weakref.ref[Client], releases: _Releases) -> None:
    """The flusher thread: send ended leases that no request carried within FLUSH_DELAY. It
    holds the client only weakly, and ends with it."""
    while True:
        if not releases.wake.wait(timeout=WATCH_INTERVAL):
            client = client_ref()
            if client is None:
                return
            client._watch()
            del client
            continue
        time.sleep(FLUSH_DELAY)
        releases.wake.clear()
        client = client_ref()
        if client is None:
            return
        if releases.items:
            client._flush()
        del client
