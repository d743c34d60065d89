"""Request handlers for both sockets (docs/protocol.md lists the ops and the error codes).

A handler returns (reply fields, descriptors to attach). Shelf errors become error replies;
framing faults (ProtocolError) propagate and close the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import stat
import time
from collections.abc import Awaitable, Callable
from typing import Any

from modelshelf import __version__, feed
from modelshelf import wire as _wire
from modelshelf.errors import (
    AccessDenied,
    ImageError,
    ImageMissing,
    InvalidModelName,
    MalformedRef,
    ModelNotFound,
    ModelshelfError,
    ProtocolError,
    StoreError,
)
from modelshelf.names import ModelRef, parse_ref
from modelshelf.store import RefInfo

from . import aiowire
from .aiowire import Reader
from .connection import Connection
from .errors import OUT_OF_DESCRIPTORS, BadRequest, Busy, out_of_descriptors, store_refusal
from .ratelog import RateLimited
from .saved import MAX_PINS
from .state import ServerState
from .tiers import Copy, TierName

log = logging.getLogger("modelshelfd.handlers")

MAX_LABELS = 16  # names listed per image in ``ls`` (``model_count`` says how many there are)
MAX_RELEASES = 512  # digests released by one message (a 64 KiB message holds about 900)
# leases one connection may hold (a client holds one per image it maps): about 1 MiB of the
# daemon's memory at most; and all the connections of one uid together (about 8 MiB)
MAX_LEASES = 8192
MAX_LEASES_PER_UID = 65536
MAX_CLIENT_ROWS = 256  # client connections listed by ``status`` (the largest leases first)
MIN_EVENT_RETENTION = 600.0  # gc keeps the change feed's events this long at least
MAX_GC_ROWS = 100  # staging objects listed by ``gc`` (``count`` and ``bytes`` cover them all)

_refusals = RateLimited(log, interval=10.0)
audit = logging.getLogger("modelshelfd.audit")  # every admin request: who did what
_AUDITED = ("version", "removed", "tiers", "count", "bytes")  # repeated by an audit line

Msg = dict[str, Any]
Reply = _wire.Message  # reply fields and the descriptors to attach
Handler = Callable[[ServerState, Connection, dict[str, Any], list[int]], Awaitable[Reply]]


async def handle(state: ServerState, conn: Connection, message: Msg, fds: list[int]) -> Reply:
    rid = message.get("id")
    op = message.get("op")
    table = CLIENT_OPS if conn.kind == "client" else ADMIN_OPS
    if fds and not (conn.kind == "admin" and op == "publish"):
        _wire.close_fds(fds)
        raise ProtocolError(f"descriptors attached to {op!r}, which takes none")
    try:
        if rid is not None and (isinstance(rid, bool) or not isinstance(rid, int)):
            raise BadRequest(f"id must be an integer, got {rid!r:.40}")
        handler = table.get(op) if isinstance(op, str) else None
        if handler is None:
            raise BadRequest(f"unknown op {op!r:.40} on the {conn.kind} socket")
        if conn.read_only and op not in READ_ONLY_OPS:
            raise Busy(
                "every admin connection is in use (a prefetch with --parallel, or other "
                f"commands): this one, kept for {', '.join(sorted(READ_ONLY_OPS))}, cannot "
                f"run {op!r}; retry when another admin command is done"
            )
        fields, out = await handler(state, conn, message, fds)
        reply: dict[str, Any] = {"ok": True, **fields}
    except ProtocolError:
        raise
    except Exception as exc:
        out = []
        if isinstance(exc, OSError) and exc.errno in OUT_OF_DESCRIPTORS:
            exc = out_of_descriptors(exc)
        code = exc.code if isinstance(exc, ModelshelfError) else "internal"
        text = str(exc) or type(exc).__name__
        state.shelf.stats[f"refused_{code}"] += 1
        if code == "internal":
            log.exception("internal error handling %r", op)
        else:
            level = logging.WARNING if code in ("busy", "store_unavailable") else logging.INFO
            # the rate limit's key must not come from the peer: an unknown op is "other"
            kind = op if isinstance(op, str) and (op in CLIENT_OPS or op in ADMIN_OPS) else "other"
            _refusals.log(
                level, f"{code}/{kind}", "%s refused for pid %d (uid %d): %s [%s]",
                kind, conn.pid, conn.uid, text, code,
            )  # fmt: skip
        if code == "store_unavailable" and conn.kind == "client":
            # the store's own error names buckets, paths and endpoints: operators read it in
            # the log line above (or through the admin socket), clients get what it means
            text = f"{op}: {store_refusal(exc)}"
            if not isinstance(exc, MalformedRef | ImageMissing):
                text += " (the daemon's log has the store's error)"
        reply = {"ok": False, "error": code, "message": text}
    finally:
        _wire.close_fds(fds)
    if conn.kind == "admin":
        _audit(conn, op, message, reply)
    if rid is not None:
        reply["id"] = rid
    return reply, out


def _audit(conn: Connection, op: object, message: Msg, reply: dict[str, Any]) -> None:
    """One line per admin request, refused ones too: the caller (SO_PEERCRED uid and pid),
    the op, its model and the outcome. Reads are logged at DEBUG, everything else at INFO."""
    kind = op if isinstance(op, str) and op in ADMIN_OPS else "other"
    model = message.get("model")
    if kind == "gc" and message.get("dry_run") is True:
        kind = "gc --dry-run"  # deleted nothing: the record must not read as if it had
    what = kind if model is None else f"{kind} {model!r:.200}"  # repr: no forged log lines
    if reply["ok"]:
        outcome = "ok" + "".join(f", {k} {reply[k]}" for k in _AUDITED if k in reply)
    else:
        outcome = f"refused [{reply['error']}]"
    level = logging.DEBUG if kind in READ_ONLY_OPS else logging.INFO
    # the field is the name as given (JSON and logfmt escape it); the sentence quotes it
    shown = model[:200] if isinstance(model, str) else None if model is None else repr(model)[:200]
    fields = {"op": kind, "model": shown, "uid": conn.uid, "pid": conn.pid}
    audit.log(
        level, "%s by uid %d (pid %d): %s", what, conn.uid, conn.pid, outcome,
        extra={**fields, "outcome": outcome},
    )  # fmt: skip


def _ref(message: dict[str, Any], *, versioned: bool = True) -> ModelRef:
    if "model" not in message:
        raise BadRequest("missing field 'model'")
    ref = parse_ref(message["model"])
    if not versioned and ref.version is not None:
        raise BadRequest(f"{ref}: give ns/name without a version")
    return ref


# -- client socket ----------------------------------------------------------------------------


async def _acquire(state: ServerState, conn: Connection, message: Msg, fds: list[int]) -> Reply:
    started = time.perf_counter()
    ref = _ref(message)
    if not state.config.allowed(ref.namespace, conn.uid, conn.gid, conn.groups):
        raise AccessDenied(
            f"uid {conn.uid} (gid {conn.gid}) may not use namespace {ref.namespace!r} on this "
            "node; ask the operator to add it to the daemon's 'namespaces' table"
        )
    _release_batch(state, conn, message.pop("release", None))
    info = await state.catalog.resolve(ref)
    if message.get("have") == info.digest and conn.leases.get(info.digest):
        # the client already maps this image under a lease of this connection
        return {"unchanged": True, "version": info.version, "digest": info.digest}, []
    if conn.lease_count >= MAX_LEASES:
        raise Busy(
            f"this connection holds {conn.lease_count} leases, the most one may: release "
            "models it no longer maps (the client library does, as their mappings end), or "
            "use more connections"
        )
    if state.uid_leases[conn.uid] >= MAX_LEASES_PER_UID:
        raise Busy(
            f"the connections of uid {conn.uid} hold {state.uid_leases[conn.uid]} leases, the "
            "most one uid may: release models its processes no longer map"
        )
    lease = await state.shelf.acquire(info)
    conn.leases.setdefault(info.digest, []).append(lease)
    conn.lease_count += 1
    state.uid_leases[conn.uid] += 1
    conn.handing.append(lease)  # an L2 lease's own descriptor: closed once the reply is sent
    state.metrics.acquired(lease.found.value, time.perf_counter() - started)
    return _acquired(state, info, lease.found, lease.copy), [lease.fd]


async def _release(state: ServerState, conn: Connection, message: Msg, fds: list[int]) -> Reply:
    return _release_now(state, conn, message), []


def _release_now(state: ServerState, conn: Connection, message: Msg) -> dict[str, Any]:
    """``{"digest": d}`` releases one lease and must name one this connection holds;
    ``{"digests": [...]}`` releases one lease per item and skips (and counts) the others."""
    if "digests" in message:
        return {"released": _release_batch(state, conn, message["digests"])}
    digest = message.get("digest")
    if not (isinstance(digest, str) and _release_one(state, conn, digest)):
        raise BadRequest(f"this connection holds no lease on {digest!r:.80}")
    return {}


def _release_batch(state: ServerState, conn: Connection, digests: object) -> int:
    """Release one lease per digest listed (the client's mappings that ended)."""
    if digests is None:
        return 0
    if not isinstance(digests, list) or len(digests) > MAX_RELEASES:
        raise BadRequest(f"release takes a list of at most {MAX_RELEASES} digests")
    released = 0
    for digest in digests:
        if isinstance(digest, str) and _release_one(state, conn, digest):
            released += 1
        else:
            state.shelf.stats["release_unknown"] += 1
    return released


def _release_one(state: ServerState, conn: Connection, digest: str) -> bool:
    held = conn.leases.get(digest)
    if not held:
        return False
    state.shelf.release(held.pop())
    conn.lease_count -= 1
    state.uid_leases[conn.uid] -= 1
    if not held:
        del conn.leases[digest]
    return True


def fast(
    state: ServerState, conn: Connection, reader: Reader, message: Msg, fds: list[int]
) -> bool:
    """Answer on the spot, without a task switch, what needs no waiting: ping, release, and
    an acquire that the ref cache and L1 can answer. False: take the ordinary path."""
    rid = message.get("id")
    if fds or (rid is not None and (isinstance(rid, bool) or not isinstance(rid, int))):
        return False
    op = message.get("op")
    out: list[int] = []
    took = -1.0  # an acquire's time to its reply, recorded once the reply is on its way
    info: RefInfo | None = None  # a lease taken: its bookkeeping follows the reply
    if op == "ping":
        fields: dict[str, Any] = {}
    elif op == "release":
        try:
            fields = _release_now(state, conn, message)
        except BadRequest:
            return False
    elif op == "acquire" and "have" not in message:
        started = time.perf_counter()
        try:
            ref = _parsed(message.get("model"))
        except InvalidModelName:
            return False
        if "release" in message:  # the client's ended mappings: before anything is reserved
            try:
                _release_batch(state, conn, message["release"])
            except BadRequest:
                return False  # the ordinary path refuses it with the reason
            del message["release"]
        info = state.catalog.cached(ref)
        if info is None or not state.config.allowed(ref.namespace, conn.uid, conn.gid, conn.groups):
            return False
        if conn.lease_count >= MAX_LEASES or state.uid_leases[conn.uid] >= MAX_LEASES_PER_UID:
            return False  # the ordinary path refuses it, saying why
        lease = state.shelf.lease_if_resident(info)
        if lease is None:
            return False
        conn.leases.setdefault(info.digest, []).append(lease)
        conn.lease_count += 1
        state.uid_leases[conn.uid] += 1
        out = [lease.fd]
        frame = _l1_reply(state, info, lease.copy, rid)
        took = time.perf_counter() - started
    else:
        return False
    if info is None:
        reply = {"ok": True, **fields}
        if rid is not None:
            reply["id"] = rid
        frame = _wire.encode(reply)
    if not aiowire.send_frame_now(conn.sock, frame, out):
        reader.fail(ProtocolError("the peer does not read its replies"))
    if info is not None:
        # After the reply, in this same callback: the policies' request, the hit counters and
        # the histogram; no other request runs in between, and a failed send (the connection
        # closes and releases the lease) is counted as today.
        state.shelf.count_resident_hit(info)
        state.metrics.acquired("l1", took)
    return True


# The fast path's work that depends only on what was asked, remembered (bounded): a woken
# daemon's parse of a reference and the JSON of a reply are ~10-20 us each of cold Python.
_MAX_REMEMBERED = 4096
_refs: dict[str, ModelRef] = {}
_l1_replies: dict[tuple[str, str, int, int], bytes] = {}


def _parsed(raw: object) -> ModelRef:
    """``parse_ref(raw)``, remembered for a string asked for before."""
    if type(raw) is str:
        ref = _refs.get(raw)
        if ref is not None:
            return ref
    ref = parse_ref(raw)  # InvalidModelName for anything else
    if len(_refs) >= _MAX_REMEMBERED:
        _refs.clear()
    _refs[raw] = ref  # type: ignore[index]  # parse_ref took it: a str
    return ref


def _l1_reply(state: ServerState, info: RefInfo, copy: Copy, rid: int | None) -> bytes:
    """The framed reply to an acquire the fast path served from L1 (``copy``): exactly
    ``wire.encode({"ok": True, **_acquired(...), "id": rid})``, its fields' JSON remembered
    per image and catalog generation (the fast path's copies are all L1 segments)."""
    key = (info.digest, info.key, info.version, state.catalog.generation)
    head = _l1_replies.get(key)
    if head is None:
        fields = {"ok": True, **_acquired(state, info, TierName.L1, copy)}
        head = _wire.encode(fields)[_wire.LENGTH.size : -1]  # the object without its "}"
        if len(_l1_replies) >= _MAX_REMEMBERED:
            _l1_replies.clear()
        _l1_replies[key] = head
    body = head + (b"}" if rid is None else b',"id":%d}' % rid)
    return _wire.LENGTH.pack(len(body)) + body


def _acquired(state: ServerState, info: RefInfo, found: TierName, copy: Copy) -> dict[str, Any]:
    return {
        "model": info.key,
        "version": info.version,
        "digest": info.digest,
        "size": info.size,
        "tier": found.value,  # where the image was when asked: l1, l2 or l3
        "served": copy.tier.value,  # what the descriptor is: l1 segment or l2 file
        "generation": state.catalog.generation,
    }


async def _ping(state: ServerState, conn: Connection, message: Msg, fds: list[int]) -> Reply:
    return {}, []


# -- admin socket -----------------------------------------------------------------------------


async def _status(state: ServerState, conn: Connection, message: Msg, fds: list[int]) -> Reply:
    kinds = [c.kind for c in state.connections]
    return {
        "daemon": f"modelshelfd/{__version__}",
        "pid": os.getpid(),
        "uptime": round(time.time() - state.started, 3),
        "store": state.config.store,
        "socket": state.config.socket,
        "instance": state.config.shm_prefix,
        "generation": state.catalog.generation,
        "store_reachable": state.catalog.reachable,
        "store_unreachable_since": state.catalog.unreachable_since,
        "store_error": state.catalog.last_error,  # the store's own message (names it): admins
        "catalog_saved_at": state.catalog.restored_at,  # serving the catalog saved in cache_dir
        "connections": {"client": kinds.count("client"), "admin": kinds.count("admin")},
        "pressure": state.board.pressure,
        "memory": None if state.memory is None else state.memory.describe(),
        "warm": None if state.warmer is None else state.warmer.describe(),
        "ready": state.readiness()["ready"],
        **state.shelf.describe(),
        "clients": _clients(state),
    }, []


def _clients(state: ServerState) -> list[dict[str, Any]]:
    """Each client connection: who it is and what it holds (the largest leases first)."""
    rows = []
    for c in state.connections:
        if c.kind != "client":
            continue
        copies = [lease.copy for held in c.leases.values() for lease in held]
        rows.append(
            {
                "pid": c.pid,
                "uid": c.uid,
                "gid": c.gid,
                "leases": len(copies),
                "leased_bytes": sum(copy.size for copy in copies),
                "images": len(c.leases),
            }
        )
    rows.sort(key=lambda r: (-r["leased_bytes"], r["pid"]))
    return rows[:MAX_CLIENT_ROWS]


async def _ls(state: ServerState, conn: Connection, message: Msg, fds: list[int]) -> Reply:
    offset = _offset(message)
    rows = state.shelf.listing(MAX_LABELS)
    rows.sort(key=lambda r: (r["models"], r["digest"]))
    page, following = _page(rows, offset)
    return {"models": page, "total": len(rows), "next": following}, []


def _offset(message: Msg) -> int:
    offset = message.get("offset", 0)
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise BadRequest(f"offset must be a non-negative integer, got {offset!r:.40}")
    return offset


def _pattern(message: Msg) -> str:
    pattern = message.get("pattern", "*")
    if not isinstance(pattern, str) or not 0 < len(pattern) <= 256:
        raise BadRequest(f"pattern must be a string of 1-256 characters, got {pattern!r:.40}")
    return pattern


def _page(rows: list[Any], offset: int, copies: int = 1) -> tuple[list[Any], int | None]:
    """The rows from ``offset`` that fit one reply, each sent ``copies`` times, and the offset
    of the next page (None after the last). One reply is at most MAX_MESSAGE bytes: long
    listings come in pages."""
    page: list[Any] = []
    used = 256
    for row in rows[offset:]:
        size = (len(json.dumps(row, separators=(",", ":"))) + 1) * copies
        if page and used + size > _wire.MAX_MESSAGE - 1024:
            break
        page.append(row)
        used += size
    end = offset + len(page)
    return page, end if end < len(rows) else None


async def _names(state: ServerState, conn: Connection, message: Msg, fds: list[int]) -> Reply:
    """The catalog's model names matching a shell-style ``pattern`` (``"acme/*"``), in pages
    from ``offset`` (the reply's ``next``); with ``"versions": true``, each one's versions too."""
    pattern, offset = _pattern(message), _offset(message)
    names = state.catalog.matching(pattern)
    if message.get("versions") is True:  # and each one's versions, as the catalog knows them
        # the name goes twice: in the list and as the key of its versions
        rows, following = _page([[n, state.catalog.versions[n]] for n in names], offset, 2)
        reply: dict[str, Any] = {
            "names": [n for n, _ in rows],
            "versions": {n: versions for n, versions in rows},
        }
    else:
        reply = {}
        reply["names"], following = _page(names, offset)
    return {**reply, "total": len(names), "next": following}, []


MAX_MODEL_ROWS = 500  # rows of one ``models`` reply; the client pages on with ``offset``


async def _models(state: ServerState, conn: Connection, message: Msg, fds: list[int]) -> Reply:
    """The catalog's models matching ``pattern``, from ``offset`` on: versions, and the latest
    version's digest, size and publication (one ref read per model, cached for good)."""
    pattern, offset = _pattern(message), _offset(message)
    names = state.catalog.matching(pattern)
    window = names[offset : offset + MAX_MODEL_ROWS]
    page = [(i, key, state.catalog.versions.get(key) or []) for i, key in enumerate(window)]
    page = [(i, key, versions) for i, key, versions in page if versions]
    found = await asyncio.gather(
        *(state.catalog.resolve(parse_ref(f"{key}@{vs[-1]}")) for _, key, vs in page),
        return_exceptions=True,
    )
    rows = []
    for (_, key, versions), info in zip(page, found, strict=True):
        row: dict[str, Any] = {"model": key, "versions": len(versions), "latest": versions[-1]}
        if isinstance(info, RefInfo):
            row.update(digest=info.digest, size=info.size, published=info.published)
        elif isinstance(info, ModelshelfError):  # a ref unreadable now: listed, not hidden
            row.update(digest=None, size=None, published=None, error=info.code)
        else:
            raise info
        rows.append(row)
    fits, cut = _page(rows, 0)  # long names make 500 rows more than one reply holds
    end = offset + (page[cut][0] if cut is not None else len(window))
    return {"models": fits, "total": len(names), "next": end if end < len(names) else None}, []


async def _prefetch(state: ServerState, conn: Connection, message: Msg, fds: list[int]) -> Reply:
    info = await state.catalog.resolve(_ref(message))
    found = await state.shelf.ensure(info, request=False)
    await state.shelf.settle(info.digest)  # report where it ends up, promotion included
    return _placed(state, info, found), []


def _placed(state: ServerState, info: RefInfo, found: TierName) -> dict[str, Any]:
    return {
        "model": info.key,
        "version": info.version,
        "digest": info.digest,
        "tier": found.value,  # where it was found
        "tiers": [t.value for t in state.shelf.where(info.digest)],  # where it is now
    }


async def _evict(state: ServerState, conn: Connection, message: Msg, fds: list[int]) -> Reply:
    """Evict from L1 (default), from L2 (``"tier": "l2"``) or from both (``"all"``)."""
    tier = message.get("tier", "l1")
    if tier not in ("l1", "l2", "all"):
        raise BadRequest(f"tier must be 'l1', 'l2' or 'all', got {tier!r:.40}")
    info = await _resolve_held(state, _ref(message))
    state.shelf.entry(info.digest)  # not_found if it is not on this node
    if tier != "l2" and state.shelf.pinned(info.digest):
        raise BadRequest(f"{info.key}@{info.version} is pinned; unpin it first")
    names = (TierName.L1, TierName.L2) if tier == "all" else (TierName(tier),)
    evicted = [name.value for name in names if state.shelf.evict(info.digest, name)]
    log.info(
        "evicted %s@%d from %s for uid %d (pid %d)",
        info.key, info.version, "+".join(evicted) or "nowhere", conn.uid, conn.pid,
    )  # fmt: skip
    return {"model": info.key, "version": info.version, "evicted": bool(evicted),
            "tiers": evicted}, []  # fmt: skip


async def _pin(state: ServerState, conn: Connection, message: Msg, fds: list[int]) -> Reply:
    info = await state.catalog.resolve(_ref(message))
    ref = f"{info.key}@{info.version}"
    if state.pins is not None and ref not in state.pins.refs and state.pins.full():
        # the pin list is read back whole at the next start: never written beyond its bound
        raise BadRequest(
            f"this node holds {MAX_PINS} pins, its limit; unpin some before pinning {ref}"
        )
    found = await state.shelf.ensure(info, request=False)
    await state.shelf.settle(info.digest)  # a promotion into L1 may still be running
    # a large image on its first use stays out of L1 by the admission rule: a pin asks for it
    await state.shelf.to_l1(info.digest)
    state.shelf.pin(info.digest, True)
    if state.pins is not None:  # a pin lasts until unpin, across restarts
        await _save_pins(state, state.pins.add(ref, info.digest))
    return _placed(state, info, found), []


async def _resolve_held(state: ServerState, ref: ModelRef) -> RefInfo:
    """``ref`` resolved in the store; a version removed from the store since still names what
    this node holds of it (its pin, a copy used under that name): unpin and evict must reach
    it (they answered "not found in the store" until a restart dropped the pin)."""
    try:
        return await state.catalog.resolve(ref)
    except ModelNotFound:
        if ref.version is None:
            raise
        name = f"{ref.key}@{ref.version}"
        pins = state.pins
        digest = None if pins is None else pins.refs.get(name) or pins.hints.get(name)
        if digest is None:
            digest = next((d for d, e in state.shelf.entries.items() if name in e.labels), None)
        entry = None if digest is None else state.shelf.entries.get(digest)
        if digest is None or (entry is None and (pins is None or name not in pins.kept)):
            raise
        size = 0 if entry is None else entry.size
        return RefInfo(ref.namespace, ref.name, ref.version, digest, size)


async def _unpin(state: ServerState, conn: Connection, message: Msg, fds: list[int]) -> Reply:
    info = await _resolve_held(state, _ref(message))
    ref = f"{info.key}@{info.version}"
    if state.pins is None or ref not in state.pins.kept:  # a kept pin may not be on the node
        state.shelf.entry(info.digest)  # not_found if it is not on this node
    state.shelf.pin(info.digest, False)
    if state.pins is not None:
        await _save_pins(state, state.pins.drop(info.digest, ref))
    return {"model": info.key, "version": info.version}, []


async def _save_pins(state: ServerState, snapshot: tuple[int, bytes]) -> None:
    assert state.pins is not None
    try:
        await asyncio.to_thread(state.pins.write, snapshot)
    except OSError as exc:  # the pin holds until the daemon stops; the next one lacks it
        log.warning("saving the pins in cache_dir failed (a restart will not pin again "
                    "what changed now): %s", exc)  # fmt: skip


async def _rm(state: ServerState, conn: Connection, message: Msg, fds: list[int]) -> Reply:
    ref = _ref(message)
    if str(message.get("model", "")).endswith("@latest"):  # parsed as "no version": all
        raise BadRequest(
            f"{ref.key}@latest would remove whichever version is newest when the request "
            f"arrives; name it ({ref.key}@VERSION), or remove every version ({ref.key} with "
            '"all": true)'
        )
    if ref.version is None and message.get("all") is not True:
        raise BadRequest(
            f'{ref.key} without a version removes every version; send "all": true to mean '
            "it (modelshelf rm --yes)"
        )
    store = state.store
    removed = await asyncio.to_thread(store.remove, ref.namespace, ref.name, ref.version)
    versions = await asyncio.to_thread(store.versions, ref.namespace, ref.name)
    state.catalog.update(ref.key, versions)
    return {"model": ref.key, "removed": removed}, []


async def _stats(state: ServerState, conn: Connection, message: Msg, fds: list[int]) -> Reply:
    counters = state.shelf.counters()
    counters["connections_refused"] = state.refused
    return {"counters": counters, "generation": state.catalog.generation}, []


async def _publish(state: ServerState, conn: Connection, message: Msg, fds: list[int]) -> Reply:
    ref = _ref(message, versioned=False)
    if len(fds) != 1:
        raise BadRequest(f"publish takes exactly one descriptor (the image file), got {len(fds)}")
    try:
        st = os.fstat(fds[0])
    except OSError as exc:
        raise BadRequest(f"cannot stat the descriptor sent: {exc}") from exc
    if not stat.S_ISREG(st.st_mode):  # a pipe or a device has no size to bound
        raise BadRequest("publish takes a regular file (or a memfd) holding the image")
    size, limit = st.st_size, state.config.l1_bytes
    if size > limit:  # the daemon copies the image once: bounded by what it could serve
        raise BadRequest(
            f"the image is {size} bytes, more than this node's L1 budget of {limit}; "
            "publish it straight to the store (modelshelf publish --store URL)"
        )
    if size == 0:
        raise ImageError("the file sent is empty, not an image")
    if_changed, progress = message.get("if_changed", False), message.get("progress", False)
    for key, value in (("if_changed", if_changed), ("progress", progress)):
        if not isinstance(value, bool):
            raise BadRequest(f"{key} must be true or false, got {value!r:.40}")
    sent = [0]  # bytes uploaded so far, counted by the upload's thread
    reporter = _Progress(state, conn, sent, size) if progress else None
    entry = state.publishing.setdefault(ref.key, [asyncio.Lock(), 0])
    entry[1] += 1  # publishes of this model waiting or running here
    lock: asyncio.Lock = entry[0]
    try:
        # one publish of a model at a time on this node: "unchanged" is decided against the
        # version the one before it made (six concurrent publishes of the same bytes made up
        # to five versions); other models publish meanwhile
        async with lock:
            # streamed from the descriptor (read twice: checked, then uploaded while hashed
            # again), never copied whole; a file changed in between is refused, not stored
            info = await asyncio.to_thread(
                state.store.publish_file, ref.namespace, ref.name, fds[0],
                skip_unchanged=if_changed, progress=lambda n: sent.__setitem__(0, sent[0] + n),
            )  # fmt: skip
    finally:
        entry[1] -= 1
        if not entry[1]:
            del state.publishing[ref.key]
        if reporter is not None:
            await reporter.stop()
    try:  # this daemon's own catalog, at once (the poll would see it too, a little later)
        versions = await asyncio.to_thread(state.store.versions, ref.namespace, ref.name)
    except StoreError as exc:  # the version exists: say so, never "the publish failed"
        log.warning("published %s@%d; listing it for this daemon's catalog failed (the next poll "
                    "lists it): %s", info.key, info.version, exc)  # fmt: skip
    else:
        state.catalog.update(ref.key, versions)
    if info.unchanged:
        log.info("publish of %s: unchanged, the latest version %d holds the same image",
                 info.key, info.version)  # fmt: skip
    else:
        log.info("published %s@%d (%s, %d bytes)", info.key, info.version, info.digest[:12],
                 info.size)  # fmt: skip
    return {
        "model": info.key,
        "version": info.version,
        "digest": info.digest,
        "size": info.size,
        "unchanged": info.unchanged,
    }, []


class _Progress:
    """Frames ``{"progress": bytes, "total": size}`` sent while a publish uploads, before its
    reply (asked for with ``"progress": true``); stopped, never cancelled mid-frame."""

    INTERVAL = 0.25  # seconds between frames

    def __init__(self, state: ServerState, conn: Connection, sent: list[int], total: int) -> None:
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._run(state, conn, sent, total))

    async def _run(self, state: ServerState, conn: Connection, sent: list[int], total: int) -> None:
        reported = -1
        while True:
            stopping = self._stop.is_set()  # the last frame tells the upload's end
            if sent[0] != reported:
                reported = sent[0]
                frame = {"progress": reported, "total": total}
                await aiowire.send(conn.sock, frame, timeout=state.config.send_timeout)
            if stopping:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.INTERVAL)

    async def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError, TimeoutError):  # the reply's send will say it too
            await self._task


async def _gc(state: ServerState, conn: Connection, message: Msg, fds: list[int]) -> Reply:
    """Delete (or with ``dry_run`` list) the store's staging objects not written for
    ``older_than`` seconds: what publishes killed mid-upload left; then compact the change
    feed (a snapshot, then the events older than ``event_retention`` removed)."""
    older_than = message.get("older_than", 3600)
    if isinstance(older_than, bool) or not isinstance(older_than, int | float):
        raise BadRequest(f"older_than must be a number of seconds, got {older_than!r:.40}")
    if not 0 <= older_than < 1e12:  # NaN fails both
        raise BadRequest(f"older_than must be 0 or more seconds, got {older_than!r:.40}")
    dry_run = message.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise BadRequest(f"dry_run must be true or false, got {dry_run!r:.40}")
    retention = message.get("event_retention", 3600)
    if isinstance(retention, bool) or not isinstance(retention, int | float):
        raise BadRequest(f"event_retention must be a number of seconds, got {retention!r:.40}")
    if not MIN_EVENT_RETENTION <= retention < 1e12:
        raise BadRequest(
            f"event_retention must be at least {MIN_EVENT_RETENTION:.0f} seconds, "
            f"got {retention!r:.40}"
        )
    stale = await asyncio.to_thread(state.store.collect_staged, float(older_than), dry_run=dry_run)
    done = await asyncio.to_thread(feed.compact, state.store, float(retention), dry_run=dry_run)
    return {
        "feed": dataclasses.asdict(done),
        "store": state.config.store,
        "dry_run": dry_run,
        "count": len(stale),
        "bytes": sum(item.size for item in stale),
        "objects": [
            {"path": item.path, "size": item.size, "age": round(item.age)}
            for item in stale[:MAX_GC_ROWS]
        ],
    }, []


CLIENT_OPS: dict[str, Handler] = {"acquire": _acquire, "release": _release, "ping": _ping}
ADMIN_OPS: dict[str, Handler] = {
    "status": _status,
    "ls": _ls,
    "prefetch": _prefetch,
    "evict": _evict,
    "pin": _pin,
    "unpin": _unpin,
    "rm": _rm,
    "stats": _stats,
    "publish": _publish,
    "gc": _gc,
    "ping": _ping,
    "names": _names,
    "models": _models,
}
READ_ONLY_OPS = frozenset({"status", "ls", "stats", "ping", "names", "models"})  # audited at DEBUG
