"""The server: lifecycle (startup, serve, shutdown), the two Unix sockets and their connections.

Config -> Server -> per-connection protocol, as in uvicorn. A connection's first message must be
``hello``; anything malformed, oversized or unexpected closes that connection and nothing else.
Leases belong to a connection: when it ends, however it ends, they are released. Requests are
dispatched to ``handlers``.

Slots are bounded per socket (``max_connections``) and per uid (``max_connections_per_uid``),
so that one user cannot take them all; a client connection that holds no lease is closed after
``idle_timeout`` seconds without a request (its client reconnects when it needs to). One that
holds leases is never closed for idleness: its leases are what the client's mappings count on,
and they are bounded by the tiers' budgets and by the per-uid limit.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import errno
import fcntl
import json
import logging
import mmap
import os
import resource
import signal
import socket
import stat
import struct
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from modelshelf import __version__
from modelshelf import wire as _wire
from modelshelf.errors import ProtocolError, ShelfError
from modelshelf.store import Store

from . import aiowire, handlers, learned, machine, pressure, systemd
from .catalog import Catalog
from .config import DERIVED, Config, ConfigError, config_from_sources, config_sources
from .connection import Connection, peer_groups
from .errors import OUT_OF_DESCRIPTORS
from .follow import Follower
from .pressure import MemoryWatch
from .ratelog import RateLimited
from .saved import Pins, SavedCatalogError, store_identity
from .shelf import Shelf
from .state import ServerState
from .storage import STORE_RECORD, Board, Disk
from .warm import Warmer

if TYPE_CHECKING:
    from .http import HttpEndpoint

log = logging.getLogger("modelshelfd")

HELLO_TIMEOUT = 10.0  # a peer that connects and says nothing does not keep a slot forever
MAX_ADMIN_CONNECTIONS = 16
# admin connections beyond the limit kept for the read-only ops (status, ls, stats...): the
# liveness probe's `modelshelf status` answers while a prefetch holds every other slot
ADMIN_READ_ONLY_SLOTS = 4
_PEERCRED = struct.Struct("3i")
_refusals = RateLimited(log, interval=10.0)


class Server:
    """The daemon's lifecycle (startup, serve, shutdown) and its two sockets."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.state: ServerState | None = None  # built by startup
        self._tasks: set[asyncio.Task[None]] = set()
        self._listening: dict[str, _Listening] = {}  # socket path -> what serves it
        self._lock_fd = -1
        self._http: HttpEndpoint | None = None
        self._retiring: set[HttpEndpoint] = set()  # replaced by a reload, finishing requests
        self.should_exit = asyncio.Event()
        self.reloading = asyncio.Lock()  # SIGHUP: one reload at a time
        self.sources: dict[str, Any] | None = None  # the configuration as given (reload)
        self._open: collections.Counter[str] = collections.Counter()  # connections by kind
        self._per_uid: collections.Counter[int] = collections.Counter()  # client connections
        self._in_progress = 0  # requests being handled, on every connection
        self._quiet = asyncio.Event()  # set while none is
        self._quiet.set()
        # a descriptor held in reserve for the admin socket: out of descriptors (EMFILE), it is
        # let go to accept one operator's connection, so that status still answers
        self._spare = -1
        self._client_spare = -1  # another, to answer a client "busy" when out of descriptors

    # -- phases -------------------------------------------------------------------------------

    async def startup(self) -> None:
        try:
            await self._startup()
        except OSError as exc:  # a directory we may not create, a socket we may not bind
            raise StartupError(f"{type(exc).__name__}: {exc}") from exc

    async def _startup(self) -> None:
        cfg = self.config
        kept = systemd.passed_segments()  # L1 segments systemd kept for us, before any open
        descriptors = machine.raise_descriptor_limit()  # one per connection and per L1 image
        machine.warn_address_space_limit()
        disk = Disk(cfg.cache_dir)  # refuses a directory it did not create, touching nothing
        # one daemon per instance: refuse before touching its segments, sockets or files
        self._lock_fd = _lock(Path(cfg.cache_dir) / "lock")
        for path in (cfg.socket, cfg.admin_socket):
            # whose directory it is comes first: a socket in a directory another user made is
            # theirs to swap, never ours to probe or unlink
            if Path(path).parent.exists():
                _check_private_dir(Path(path).parent)
            _refuse_if_live(path)
        _refuse_a_vanished_file_store(cfg.store, disk.root / STORE_RECORD)
        try:
            store = Store(
                cfg.store,
                cfg.store_options,
                max_retries=cfg.store_max_retries,
                retry_timeout=cfg.store_retry_timeout,
            )
        except ShelfError as exc:
            raise StartupError(str(exc)) from exc
        (disk.root / STORE_RECORD).write_text(cfg.store + "\n")  # seen: never again created empty
        if cfg.http and cfg.namespaces:
            _say_what_http_serves(cfg.http_namespaces)
        board = Board(cfg.shm_prefix)
        budget = machine.l1_budget(cfg.l1_bytes, machine.memory_limit())
        cfg = self.config = held_advice(cfg, self.sources, budget)
        shelf = Shelf(cfg, store, disk=disk, on_pressure=board.raise_pressure)
        shelf.l1.budget = budget
        shelf.l1.max_copies = machine.segment_limit(descriptors, cfg.max_connections)
        for tier in (shelf.l1, shelf.l2):
            if tier.budget < mmap.PAGESIZE:  # a tier counts whole pages: it can hold nothing
                log.warning(
                    "%s_bytes is %d bytes, less than one page (%d): %s holds no image%s",
                    tier.name.value, tier.budget, mmap.PAGESIZE, tier.name.value.upper(),
                    "; every image is served from local disk" if tier is shelf.l1 else "",
                )  # fmt: skip
        memory = MemoryWatch(shelf.l1, machine.read_memory, board.raise_pressure, shelf.stats)
        follower = Follower(
            store,
            skew_seconds=cfg.ref_skew_seconds,
            full_list_seconds=cfg.ref_full_list_seconds,
            stats=shelf.stats,
        )
        catalog = Catalog(
            store,
            board,
            cfg.ref_poll_seconds,
            stats=shelf.stats,
            follower=follower,
            saved_in=disk.root,
            identity=store_identity(cfg.store, cfg.store_options, os.environ),
        )
        pins = Pins(disk.root)
        try:
            pinned = pins.load()
        except SavedCatalogError as exc:
            log.warning("the pins saved in %s are not used: %s", pins.path, exc)
            pinned = []
        for dropped in pins.dropped:
            log.warning("a pin saved in %s is not used: %s (the others are)", pins.path, dropped)
        warmer = Warmer(cfg.warm, catalog, shelf, cfg.max_inflight_fetches, pins, pinned)
        self.state = state = ServerState(
            cfg, store, board, shelf, catalog, memory=memory, warmer=warmer, pins=pins
        )
        shelf.fetcher.on_fetched = state.metrics.fetched
        keeper = systemd.Keeper()
        shelf.l1.keep, shelf.l1.drop = keeper.keep, keeper.drop
        await shelf.adopt(kept, pinned=set(pins.hints.values()))
        self._spawn(catalog.poll_forever())
        self._spawn(_watch_memory(memory))
        self._spawn(_keep_learned(shelf))
        self._spawn(warmer.run())
        for path, mode, kind in (
            (cfg.socket, cfg.socket_mode, "client"),
            (cfg.admin_socket, 0o600, "admin"),
        ):
            self._listen(path, mode, kind)
        self._spawn(self._watch_sockets())
        self._spare = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        self._client_spare = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        if cfg.http:
            from .http import HttpEndpoint

            self._http = HttpEndpoint(state, cfg.http)
            await self._http.start()
        log.info(
            "listening: pid %d, socket %s, admin %s, store %s, shm prefix %s, L1 %d bytes, L2 "
            "%d bytes, clients hold up to %d bytes each (ready once the catalog is listed and "
            "the warm list placed)", os.getpid(), cfg.socket,
            cfg.admin_socket, cfg.store, cfg.shm_prefix, shelf.l1.budget, cfg.l2_bytes,
            cfg.client_held_bytes,
        )  # fmt: skip
        self._spawn(_tell_systemd(state))
        self._spawn(_say_ready(state))

    async def serve(self) -> None:
        await self.should_exit.wait()

    async def shutdown(self) -> None:
        log.info("shutting down")
        systemd.notify("STOPPING=1")
        if self._http is not None:
            # bounded: a client that sent half a body held the whole stop for its 60 s
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.shutdown_timeout):
                    await self._http.stop()
        for path, listening in self._listening.items():
            listening.task.cancel()
            listening.sock.close()
            if listening.ours(path):  # never a successor's socket bound at the same path
                os.unlink(path)
        deadline = time.monotonic() + self.config.shutdown_timeout
        with contextlib.suppress(TimeoutError):  # requests in progress finish, up to the deadline
            async with asyncio.timeout(self.config.shutdown_timeout):
                await self._quiet.wait()
        state = self.state
        if state is not None:  # fetches are tasks of their own: same deadline
            await state.shelf.drain(deadline - time.monotonic())
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if state is not None:
            state.catalog.save_now()
            try:
                state.shelf.learned_now()()
            except OSError as exc:
                _learned_failed(exc)
            state.shelf.close()
            state.board.bump()  # clients holding "latest" ask again and find the new daemon
            state.board.close()
        for spare in (self._spare, self._client_spare):
            if spare >= 0:
                os.close(spare)
        self._spare = self._client_spare = -1
        # the cache lock stays held until the process exits (with a store read still in
        # flight, another daemon must not start on this cache_dir meanwhile)
        log.info("stopped")

    def _busy(self, conn: Connection, busy: bool) -> None:
        if busy == conn.busy:
            return
        conn.busy = busy
        self._in_progress += 1 if busy else -1
        if self._in_progress:
            self._quiet.clear()
        else:
            self._quiet.set()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def replace_http(self, config: Config) -> None:
        """Serve HTTP as ``config`` says, for a reload: on a new address (bound first: if it
        cannot be, OSError and nothing changed), on the same one with another body limit or
        thread count (its listening sockets handed over: no connection refused meanwhile), or
        not at all. The endpoint replaced stops in the background: it accepts no more, and
        its requests in progress finish."""
        old, endpoint = self._http, None
        if config.http:
            from .http import HttpEndpoint

            endpoint = HttpEndpoint(self._ready(), config.http, config)
            # the address's listener: the running endpoint's, or one a reload switched off
            # moments ago that still holds it while it lets its connections finish
            owners = [old, *self._retiring] if old is not None else list(self._retiring)
            handover = next((e for e in owners if e.address == config.http and e.listening), None)
            await endpoint.start(handover)
        self._http = endpoint
        if old is not None:
            self._retiring.add(old)
            self._spawn(self._retire(old))

    async def _retire(self, endpoint: HttpEndpoint) -> None:
        try:
            await endpoint.retire()
        finally:
            self._retiring.discard(endpoint)

    # -- connections --------------------------------------------------------------------------

    def _listen(self, path: str, mode: int, kind: str) -> None:
        sock = _bind(path, mode)
        st = os.lstat(path)
        task = asyncio.get_running_loop().create_task(self._accept(sock, kind))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._listening[path] = _Listening(sock, kind, mode, (st.st_dev, st.st_ino), task)

    async def _watch_sockets(self) -> None:
        """The sockets' paths must keep naming this daemon's sockets: a socket (or its whole
        directory: /tmp cleaners) removed under a running daemon left it up, healthy by every
        check, and unreachable by any new client. Removed: bound again (with the checks of
        the start). Replaced by another file: said, never touched, and the daemon not ready."""
        state = self._ready()
        while True:
            await asyncio.sleep(SOCKET_CHECK_SECONDS)
            lost = set()
            for path, listening in list(self._listening.items()):
                if listening.ours(path):
                    continue
                if os.path.lexists(path):
                    lost.add(path)
                    _refusals.log(
                        logging.ERROR, f"socket/{path}", "the %s socket %s is no longer this "
                        "daemon's (another file is there now): new clients cannot reach it. "
                        "Left alone; remove that file and it is bound again", listening.kind,
                        path,
                    )  # fmt: skip
                    continue
                try:
                    listening.task.cancel()
                    listening.sock.close()
                    self._listen(path, listening.mode, listening.kind)
                except (OSError, StartupError) as exc:
                    lost.add(path)
                    _refusals.log(
                        logging.ERROR, f"socket/{path}", "the %s socket %s was removed and "
                        "cannot be bound again: %s", listening.kind, path, exc,
                    )  # fmt: skip
                    continue
                state.shelf.stats["sockets_rebound"] += 1
                log.warning("the %s socket %s was removed under the daemon: bound again",
                            listening.kind, path)  # fmt: skip
            state.sockets_lost = lost

    def _ready(self) -> ServerState:
        assert self.state is not None, "the server has not started"
        return self.state

    async def _accept(self, listener: socket.socket, kind: str) -> None:
        state = self._ready()
        loop = asyncio.get_running_loop()
        while True:
            sock = await self._accept_one(loop, listener, kind)
            if sock is None:
                await asyncio.sleep(0.1)  # EMFILE and friends: back off instead of spinning
                continue
            # sock_accept returns at once while connections are queued: without a turn of the
            # loop here, a flood of connections would starve every connection already accepted
            await asyncio.sleep(0)
            try:
                sock.setblocking(False)
                pid, uid, gid = _PEERCRED.unpack(
                    sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
                )
            except OSError as exc:  # the peer is already gone: never let it stop accept
                log.info("dropping a %s connection at accept: %s", kind, exc)
                sock.close()
                continue
            # read at each accept: a reload (SIGHUP) changes them
            limit = self.config.max_connections if kind == "client" else MAX_ADMIN_CONNECTIONS
            per_uid = self.config.max_connections_per_uid
            read_only = kind == "admin" and self._open[kind] >= limit
            if read_only and self._open[kind] < limit + ADMIN_READ_ONLY_SLOTS:
                message = ""  # one of the slots kept for status and the other read-only ops
            elif self._open[kind] >= limit:
                message = (
                    f"the daemon already serves its limit of {limit} {kind} connections"
                    + ("; retry later, or raise max_connections" if kind == "client" else
                       f" (and the {ADMIN_READ_ONLY_SLOTS} kept for status, ls and stats); retry "
                       "when another admin command (a prefetch with --parallel) is done")
                )  # fmt: skip
            # the daemon's own uid is not limited: its processes could stop the daemon anyway,
            # and with the default socket mode (0600) no other uid can connect at all
            elif kind == "client" and uid != os.getuid() and self._per_uid[uid] >= per_uid:
                state.shelf.stats["connections_refused_uid"] += 1
                message = (
                    f"uid {uid} already holds its limit of {per_uid} client connections; close "
                    "some (one Client per process is enough), or raise max_connections_per_uid"
                )
            else:
                message = ""
            if message:
                state.refused += 1
                _refusals.log(
                    logging.WARNING, f"connect/{kind}", "connection of pid %d (uid %d) refused: %s",
                    pid, uid, message,
                )  # fmt: skip
                with contextlib.suppress(OSError):
                    sock.send(_wire.encode(_error(None, "busy", message)))
                sock.close()
                continue
            conn = Connection(sock, kind, pid, uid, gid, peer_groups(pid), read_only=read_only)
            state.connections.add(conn)
            self._open[kind] += 1
            if kind == "client":
                self._per_uid[uid] += 1
            self._spawn(self._serve(conn))

    async def _accept_one(
        self, loop: asyncio.AbstractEventLoop, listener: socket.socket, kind: str
    ) -> socket.socket | None:
        """The next connection, or None when accept fails (logged at a bounded rate). Out of
        descriptors, the admin socket lets go of its reserve to take one operator's connection
        (taken back when an admin connection ends): status answers on a node at its limit."""
        try:
            return (await loop.sock_accept(listener))[0]
        except OSError as exc:
            if kind == "admin" and exc.errno in OUT_OF_DESCRIPTORS and self._spare >= 0:
                os.close(self._spare)
                self._spare = -1
                with contextlib.suppress(OSError):
                    return (await loop.sock_accept(listener))[0]
            if kind == "client" and exc.errno in OUT_OF_DESCRIPTORS and self._client_spare >= 0:
                self._refuse_one_client(listener)
            _refusals.log(
                logging.ERROR, f"accept/{kind}", "accept on the %s socket failed: %s", kind, exc
            )
            return None

    def _refuse_one_client(self, listener: socket.socket) -> None:
        """Out of descriptors: let go of the client reserve for as long as it takes to accept
        the next client and answer it busy, saying why (it would otherwise wait out its timeout
        on a connection the kernel queued and nobody reads)."""
        os.close(self._client_spare)
        self._client_spare = -1
        limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        message = (
            f"the daemon is out of file descriptors (its limit is {limit}: connections, L1 "
            "images and store reads each take one); retry later, and raise its LimitNOFILE "
            "(ulimit -n) or lower max_connections"
        )
        for _ in range(REFUSED_PER_TURN):  # the clients queued now, each in its turn
            try:
                sock, _ = listener.accept()
            except OSError:
                break
            with sock:
                self._ready().refused += 1
                with contextlib.suppress(OSError):
                    sock.setblocking(False)
                    sock.send(_wire.encode(_error(None, "busy", message)))
        with contextlib.suppress(OSError):
            self._client_spare = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)

    async def _next_request(self, conn: Connection, reader: aiowire.Reader) -> aiowire.Message:
        """The connection's next request. A client connection that holds no lease and sends
        nothing for ``idle_timeout`` seconds ends with TimeoutError. Requests answered on the
        spot count as requests, and may take or drop leases meanwhile: the deadline is checked
        again when it comes."""
        if conn.kind != "client":
            return await reader.next()
        loop = asyncio.get_running_loop()
        idle = self.config.idle_timeout
        while True:
            now = loop.time()
            deadline = asyncio.timeout_at(now + idle if conn.leases else reader.last_message + idle)
            try:
                async with deadline:
                    return await reader.next()
            except TimeoutError:
                if not deadline.expired():
                    raise
                if conn.leases or loop.time() < reader.last_message + idle:
                    continue
                self._ready().shelf.stats["connections_idle_closed"] += 1
                log.debug("closing idle client connection of pid %d (uid %d)", conn.pid, conn.uid)
                raise

    @staticmethod
    def _unsendable(state: ServerState, message: dict[str, Any], reply: dict[str, Any]) -> Any:
        """A reply over the frame limit, or one JSON cannot carry (a NaN or an infinity in a
        number), would close the connection: answer ``internal``, counted and logged, instead
        (every listing op pages, every number is bounded; this is the net under them)."""
        state.shelf.stats["refused_internal"] += 1
        op = str(message.get("op"))[:40]
        try:
            size = len(json.dumps(reply, allow_nan=False))
        except ValueError as exc:
            why = f"holds a number JSON cannot carry ({exc})"
        else:
            why = f"is {size} bytes, over the {_wire.MAX_MESSAGE}-byte message limit"
        _refusals.log(logging.ERROR, f"unsendable/{op}", "the reply to %s %s", op, why)
        return _error(
            message.get("id"),
            "internal",
            f"the reply to {op} {why}: a daemon bug, please report it",
        )

    async def _serve(self, conn: Connection) -> None:
        state = self._ready()
        reader = aiowire.Reader(
            conn.sock,
            # no message on the client socket takes descriptors; an admin's publish takes one
            max_fds=0 if conn.kind == "client" else _wire.MAX_FDS,
            frame_timeout=self.config.frame_timeout,
            stats=state.shelf.stats,
        )
        try:
            async with asyncio.timeout(HELLO_TIMEOUT):
                message, fds = await reader.next()
            if fds:
                _wire.close_fds(fds)
                raise ProtocolError("descriptors attached to hello")
            if message.get("op") != "hello":
                raise ProtocolError("the first message must be hello")
            if message.get("protocol") != _wire.PROTOCOL_VERSION:
                await aiowire.send(
                    conn.sock,
                    _error(
                        message.get("id"),
                        "bad_request",
                        f"protocol {message.get('protocol')!r} is not supported; this daemon "
                        f"speaks {_wire.PROTOCOL_VERSION}",
                    ),
                    timeout=self.config.send_timeout,
                )
                return
            if conn.kind == "admin" and conn.uid not in (self.config.admin_uids or (os.getuid(),)):
                await aiowire.send(
                    conn.sock,
                    _error(message.get("id"), "access_denied", f"uid {conn.uid} is not an admin"),
                    timeout=self.config.send_timeout,
                )
                return
            reply: dict[str, Any] = {
                "ok": True,
                "protocol": _wire.PROTOCOL_VERSION,
                "daemon": f"modelshelfd/{__version__}",
                "instance": self.config.shm_prefix,
                "socket": conn.kind,  # a client pointed at the admin socket can say so
                "generation": state.board.generation,
                # what each client should keep mapped for reuse, unless told otherwise
                "held_bytes": self.config.client_held_bytes,
                "held_models": self.config.client_held_models,
            }
            await aiowire.send(
                conn.sock,
                reply,
                [state.board.fd] if conn.kind == "client" else [],
                timeout=self.config.send_timeout,
            )
            if conn.kind == "client":
                reader.fast = lambda message, fds: handlers.fast(state, conn, reader, message, fds)
            while True:
                message, fds = await self._next_request(conn, reader)
                self._busy(conn, True)
                try:
                    reply, out = await handlers.handle(state, conn, message, fds)
                    try:
                        await aiowire.send(conn.sock, reply, out, timeout=self.config.send_timeout)
                    except (ProtocolError, ValueError):  # encoded before a byte is sent
                        if out:
                            raise
                        reply = self._unsendable(state, message, reply)
                        await aiowire.send(conn.sock, reply, timeout=self.config.send_timeout)
                finally:
                    self._busy(conn, False)
                    for lease in conn.handing:  # sent (the client has its own) or never will be
                        state.shelf.handed(lease)
                    conn.handing.clear()
        except (EOFError, ConnectionError, TimeoutError):
            pass
        except ProtocolError as exc:
            if self.state is not None:
                self.state.shelf.stats["protocol_errors"] += 1
            _refusals.log(
                logging.INFO, f"protocol/{conn.kind}",
                "closing %s connection of pid %d (uid %d): %s", conn.kind, conn.pid, conn.uid, exc,
            )  # fmt: skip
        except OSError as exc:
            log.info("%s connection of pid %d failed: %s", conn.kind, conn.pid, exc)
        finally:
            reader.close()
            for leases in conn.leases.values():
                for lease in leases:
                    state.shelf.release(lease)
            conn.leases.clear()
            left = state.uid_leases[conn.uid] - conn.lease_count
            if left > 0:
                state.uid_leases[conn.uid] = left
            else:
                state.uid_leases.pop(conn.uid, None)
            conn.lease_count = 0
            conn.sock.close()
            state.connections.discard(conn)
            self._open[conn.kind] -= 1
            if conn.kind == "admin" and self._spare < 0:  # the reserve, given to an operator
                with contextlib.suppress(OSError):
                    self._spare = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            if conn.kind == "client":
                self._per_uid[conn.uid] -= 1
                if not self._per_uid[conn.uid]:
                    del self._per_uid[conn.uid]


def _error(rid: object, code: str, message: str) -> dict[str, Any]:
    reply: dict[str, Any] = {"ok": False, "error": code, "message": message}
    if rid is not None:
        reply["id"] = rid
    return reply


class StartupError(Exception):
    """The daemon cannot start (another instance runs, the store URL is unusable, ...)."""


def _lock(path: Path) -> int:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StartupError(f"another modelshelfd uses the cache directory {path.parent}") from None
    return fd


STATUS_SECONDS = 5.0  # between STATUS= notifications to systemd


async def _say_ready(state: ServerState) -> None:
    """One log line when the daemon first takes traffic: the catalog listed, the warm list
    placed (the line at start says it listens, not that it is ready)."""
    while not state.readiness()["ready"]:
        await asyncio.sleep(0.1)
    log.info("ready: %d models in the catalog", len(state.catalog.versions))


async def _tell_systemd(state: ServerState) -> None:
    """READY=1 once the warm list is placed, then STATUS= (and WATCHDOG=1 if asked) for as
    long as the daemon runs; nothing without $NOTIFY_SOCKET."""
    if not os.environ.get("NOTIFY_SOCKET"):
        return
    while state.warmer is not None and not state.warmer.ready:
        await asyncio.sleep(0.1)
    systemd.notify(f"READY=1\nSTATUS={_status_line(state)}")
    ping = systemd.watchdog_interval()
    period = min(STATUS_SECONDS, ping) if ping else STATUS_SECONDS
    while True:
        await asyncio.sleep(period)
        systemd.notify(f"STATUS={_status_line(state)}" + ("\nWATCHDOG=1" if ping else ""))


def _status_line(state: ServerState) -> str:
    l1, l2 = state.shelf.l1, state.shelf.l2
    mib = 1 << 20
    return (
        f"L1 {l1.used // mib}/{l1.budget // mib} MiB ({len(l1.copies)} images), "
        f"L2 {l2.used // mib}/{l2.budget // mib} MiB ({len(l2.copies)} images), "
        f"{len(state.connections)} connections"
    )


def _refuse_a_vanished_file_store(url: str, record: Path) -> None:
    """A ``file://`` store this cache was filled from, whose directory is gone, is an outage,
    not an empty store: the Store would create the directory anew, and every model would look
    deleted. Refuse to start, saying so (a missing directory on a first start is created)."""
    parsed = urlparse(url)
    if parsed.scheme != "file" or Path(parsed.path).exists():
        return
    with contextlib.suppress(OSError):
        recorded = urlparse(record.read_text().strip())
        # the same directory however written (a trailing slash, a '.' or '//' in the path)
        if recorded.scheme == "file" and os.path.normpath(recorded.path) == os.path.normpath(
            parsed.path
        ):
            raise StartupError(
                f"the store directory {parsed.path} is missing, but this daemon's cache was "
                f"filled from it: restore it (or mount it), or, to start from an empty store, "
                f"delete {record}"
            )


async def _keep_learned(shelf: Shelf) -> None:
    """Write what the policies learned every ``learned.SAVE_SECONDS`` (and at the stop):
    a daemon killed rather than stopped loses no more than that."""
    while True:
        await asyncio.sleep(learned.SAVE_SECONDS)
        write = shelf.learned_now()
        try:
            await asyncio.to_thread(write)
        except OSError as exc:  # the cache disk full or failing: next time, perhaps
            _learned_failed(exc)


def _learned_failed(exc: OSError) -> None:
    _refusals.log(logging.WARNING, "learned", "saving what the policies learned failed: %s", exc)


async def _watch_memory(watch: MemoryWatch) -> None:
    while True:
        try:
            watch.tick()
        except OSError as exc:  # /proc unreadable now (out of descriptors): a line, no trace
            _refusals.log(logging.WARNING, "memory-watch", "memory watch cannot read: %s", exc)
        except Exception:  # a reading gone wrong must not end the watch
            log.exception("memory watch")
        await asyncio.sleep(pressure.INTERVAL)


def _refuse_if_live(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):  # never delete what is not a socket: it is not ours
        raise StartupError(
            f"{path} exists and is not a socket; the daemon will not replace it: choose another "
            "socket path, or remove it yourself"
        )
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)  # stale: its daemon is gone
    else:
        raise StartupError(f"another daemon is listening on {path}")
    finally:
        probe.close()


REFUSED_PER_TURN = 256  # clients answered busy per turn of the loop when out of descriptors
SOCKET_CHECK_SECONDS = 1.0  # how often the sockets' paths are checked (two lstat calls: nothing)


@dataclasses.dataclass
class _Listening:
    """A socket the daemon listens on: which file it is, and the task that accepts."""

    sock: socket.socket
    kind: str
    mode: int
    ident: tuple[int, int]  # (st_dev, st_ino) of the bound path
    task: asyncio.Task[None]

    def ours(self, path: str) -> bool:
        try:
            st = os.lstat(path)
        except OSError:
            return False
        return stat.S_ISSOCK(st.st_mode) and (st.st_dev, st.st_ino) == self.ident


def _bind(path: str, mode: int) -> socket.socket:
    parent = Path(path).parent
    parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    _check_private_dir(parent)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # checked stale by _refuse_if_live
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # never a window where the socket is wider than asked
    try:
        sock.bind(path)
    finally:
        os.umask(old)
    os.chmod(path, mode)
    sock.listen(512)
    sock.setblocking(False)
    return sock


def _say_what_http_serves(patterns: tuple[str, ...]) -> None:
    """With ``namespaces`` restricting the socket, HTTP (no peer uid, open to every local
    user on loopback) serves what ``http_namespaces`` lists: say so at start."""
    if not patterns:
        log.info(
            "HTTP inference serves no namespace: 'namespaces' restricts the socket and HTTP has "
            "no peer uid to check; list in http_namespaces those every local user may use"
        )
    elif "*" in patterns:
        log.warning(
            "HTTP serves every namespace to whoever reaches it (http_namespaces = ['*']), "
            "though 'namespaces' restricts the socket: on loopback, that is every local user"
        )


def _check_private_dir(directory: Path) -> None:
    """The socket's directory must be ours (or root's) and writable by nobody else: in a
    shared place such as /tmp, another user could otherwise create it first and swap the
    socket for one of their own."""
    st = os.stat(directory)
    sticky_root = st.st_uid == 0 and st.st_mode & stat.S_ISVTX  # /tmp: nobody can swap ours
    if st.st_uid not in (os.geteuid(), 0) or (st.st_mode & 0o022 and not sticky_root):
        raise StartupError(
            f"the socket directory {directory} is owned by uid {st.st_uid} with mode "
            f"{stat.S_IMODE(st.st_mode):o}; it must belong to uid {os.geteuid()} (or root) and "
            "be writable by it alone. If you did not make it, another user may have, to "
            "impersonate the daemon: remove it, or choose another socket path"
        )


# what SIGHUP may change; anything else (sockets, store, cache_dir, ...) needs a restart. The
# http_* keys other than these three are read per request; these three replace the endpoint.
HTTP_ENDPOINT = frozenset({"http", "http_max_body", "http_infer_threads"})
RELOADABLE = frozenset({
    "namespaces", "admin_uids", "log_level", "l1_bytes", "l2_bytes", "client_held_bytes",
    "client_held_models", "ref_poll_seconds", "ref_full_list_seconds", "ref_skew_seconds",
    "max_connections", "max_connections_per_uid",
    "idle_timeout", "frame_timeout", "send_timeout", "shutdown_timeout",
    "http_admin", "http_namespaces", "http_infer_queue", "http_infer_timeout",
    *HTTP_ENDPOINT,
})  # fmt: skip


async def reload(server: Server, argv: Sequence[str] | None) -> None:
    """SIGHUP: read the configuration again (file, environment, the same flags) and apply
    what may change while running; an invalid file, a change that needs a restart, or an HTTP
    address that cannot be bound, is logged and nothing is applied. Reloads run one at a
    time."""
    async with server.reloading:
        old, state = server.config, server.state
        try:
            overridden: dict[str, str] = {}
            sources = config_sources(argv, overridden=overridden)  # what is compared is applied
            new = config_from_sources(sources)
        except ConfigError as exc:
            log.error("SIGHUP: configuration not reloaded, it is invalid: %s", exc)
            return
        for name, by in sorted(overridden.items()):
            # an edit the daemon cannot see: its environment and flags were fixed at start
            log.warning(
                "SIGHUP: the config file sets %s, but %s, given at start, overrides it: "
                "restart without %s for the file's value to apply", name, by, by,
            )  # fmt: skip
        # a share ("50%") or a default is the same setting as before, whatever the machine
        # says now (L2's own files fill the disk it is a share of): its bytes stay
        before = server.sources
        same = {n for n in DERIVED if before is not None and sources.get(n) == before.get(n)}
        if "l1_bytes" not in same:
            same.discard("client_held_bytes")  # derived from L1's budget when not given
        new = dataclasses.replace(new, **{name: getattr(old, name) for name in same})
        budget = machine.l1_budget(new.l1_bytes, machine.memory_limit())
        if "client_held_bytes" not in same:
            new = held_advice(new, sources, budget)
        changed = sorted(
            f.name
            for f in dataclasses.fields(Config)
            if getattr(new, f.name) != getattr(old, f.name)
        )
        fixed = [name for name in changed if name not in RELOADABLE]
        if fixed:
            log.error(
                "SIGHUP: configuration not reloaded: %s change only with a restart",
                ", ".join(fixed),
            )
            return
        if state is None or not changed:
            log.info("SIGHUP: configuration unchanged")
            return
        if HTTP_ENDPOINT.intersection(changed):
            try:  # first: the one step that can fail
                await server.replace_http(new)
            except OSError as exc:
                log.error(
                    "SIGHUP: configuration not reloaded: cannot serve HTTP on %s: %s%s",
                    new.http, exc.strerror or exc,
                    " (the address in use may be this daemon's own, on another host name for "
                    "the same port: a restart moves it)" if exc.errno == errno.EADDRINUSE else "",
                )  # fmt: skip
                return
        _apply(server, state, new, budget)
        server.sources = sources
        log.info("SIGHUP: configuration reloaded: %s", ", ".join(changed))


def held_advice(config: Config, sources: dict[str, Any] | None, budget: int) -> Config:
    """``config`` with the clients' held-bytes advice an eighth of the L1 budget in force,
    ``budget``, when the operator gave none: an ``l1_bytes`` above the memory limit's share is
    capped at start, and the default advice follows the cap (an eighth of the configured
    bytes would let two workers lease all of L1)."""
    if sources is not None:
        given = "client_held_bytes" in sources
    else:  # built without its sources (tests): the advice is the default if it equals it
        given = config.client_held_bytes != config.l1_bytes // 8
    if given or budget >= config.l1_bytes:
        return config
    return dataclasses.replace(config, client_held_bytes=max(1, budget // 8))


def _apply(server: Server, state: ServerState, new: Config, budget: int) -> None:
    server.config = state.config = state.shelf.config = state.shelf.fetcher.config = new
    state.shelf.quotas.shares = new.share
    logging.getLogger().setLevel(new.log_level)
    state.catalog.poll_seconds = new.ref_poll_seconds
    state.catalog.follower.full_list_seconds = new.ref_full_list_seconds
    state.catalog.follower.skew_ms = int(new.ref_skew_seconds * 1000)
    l1, l2 = state.shelf.l1, state.shelf.l2
    if state.memory is not None:
        state.memory.configured = budget
        budget = min(budget, l1.budget) if state.memory.pressed else budget
    l1.budget, l2.budget = budget, new.l2_bytes
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    l1.max_copies = machine.segment_limit(soft, new.max_connections)
    l1.shrink()
    l2.shrink()


async def _main(config: Config, argv: Sequence[str] | None, sources: dict[str, Any] | None) -> None:
    server = Server(config)
    server.sources = sources
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, server.should_exit.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: server._spawn(reload(server, argv)))
    try:
        await server.startup()
        await server.serve()
    finally:
        await server.shutdown()
        for sig in (*signals, signal.SIGHUP):
            loop.remove_signal_handler(sig)


def run(
    config: Config, argv: Sequence[str] | None = None, sources: dict[str, Any] | None = None
) -> None:
    """Run the daemon until SIGTERM or SIGINT; ``argv`` is read again on SIGHUP. ``sources``:
    the values ``config`` was built from (``config_sources``), which a reload compares with
    its own for the budgets the machine decides (None: a reload computes them again)."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(_main(config, argv, sources))
    finally:
        with contextlib.suppress(Exception):
            loop.run_until_complete(loop.shutdown_asyncgens())
        asyncio.set_event_loop(None)
        loop.close()  # its threads are not waited for: main() exits without a store read
        # still in flight (a slow store held the stopped daemon for minutes: asyncio.run
        # joins them)
