"""``modelshelf prefetch``: place many models on this node at once, with a progress bar.

Names are ``ns/name[@version]``, shell-style patterns over the daemon's catalog (``'acme/*'``,
quoted so that the shell leaves them alone) or ``-`` for names on stdin, one per line. They
run over ``--parallel`` admin connections; a progress bar (tqdm, the ``cli`` extra) shows on a
terminal or with ``--progress``, else one line per model. The exit status is that of the first
failure's error.
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from ..admin import AdminConnection
from ..errors import ModelNotFound, ModelshelfError, ShelfBusy, for_code
from ._output import UsageError, pairs, progress_bar

_GLOB = frozenset("*?[")


def add_command(sub: Any) -> None:
    p = sub.add_parser(
        "prefetch",
        help="fetch NAMEs onto this node now (shared memory, else local disk)",
        description="Place models on this node now: NAMEs (ns/name[@version]), patterns over "
        "the catalog ('acme/*', quoted), or - for names on stdin, one per line. With --json: "
        "one JSON object per model, then a summary.",
    )
    p.add_argument("models", metavar="NAME", nargs="+", help="ns/name[@version], 'ns/*' or -")
    p.add_argument(
        "--parallel", type=int, default=4, metavar="N",
        help="prefetches in flight at once (default 4; the daemon bounds its own fetches)",
    )  # fmt: skip
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.parallel <= 16:
        raise UsageError(
            f"--parallel must be 1..16 (the daemon takes 16 admin connections), got {args.parallel}"
        )
    unmatched: list[str] = []  # patterns that match no model: reported, and exit 3
    names = list(_expand(args.models, args.admin_socket, unmatched))
    for pattern in unmatched:
        message = f"{pattern!r} matches no model"
        if not args.json:
            print(f"modelshelf prefetch: {message}", file=sys.stderr, flush=True)
        elif names:  # else the error object alone says it
            line = {"pattern": pattern, "ok": False, "code": "not_found", "error": message}
            print(json.dumps(line, sort_keys=True), flush=True)
    if not names:
        given = " ".join(a for a in args.models if a != "-")
        stdin = "no names on stdin" if "-" in args.models else ""
        raise ModelNotFound(
            f"no model matches {given}" if given else f"nothing to prefetch: {stdin}"
        )
    local = threading.local()
    connections: list[AdminConnection] = []
    lock = threading.Lock()

    def prefetch(name: str) -> dict[str, Any]:
        admin = getattr(local, "admin", None)
        if admin is None:
            admin = local.admin = AdminConnection(args.admin_socket)
            with lock:
                connections.append(admin)
        started = time.monotonic()
        try:
            reply = admin.request({"op": "prefetch", "model": name})
        except ModelshelfError as exc:
            return {"model": name, "ok": False, "error": str(exc), "code": exc.code}
        reply.pop("ok", None)
        return {"ok": True, **reply, "seconds": round(time.monotonic() - started, 3)}

    results: list[dict[str, Any]] = []
    bar = progress_bar(args, len(names), unit="model")
    # daemon threads, not an executor: Ctrl-C must not wait for the requests in flight (an
    # executor's threads are joined at exit, and it waited for every queued name too)
    todo: queue.SimpleQueue[tuple[int, str] | None] = queue.SimpleQueue()
    done: queue.SimpleQueue[tuple[int, dict[str, Any] | BaseException]] = queue.SimpleQueue()
    for item in enumerate(names):
        todo.put(item)
    workers = min(args.parallel, len(names))
    for _ in range(workers):
        todo.put(None)

    def work() -> None:
        while (item := todo.get()) is not None:
            i, name = item
            try:
                done.put((i, prefetch(name)))
            except BaseException as exc:  # no connection: the command fails with it
                done.put((i, exc))

    for _ in range(workers):
        threading.Thread(target=work, name="modelshelf-prefetch", daemon=True).start()
    try:
        ready: dict[int, dict[str, Any]] = {}
        for _ in names:
            i, outcome = done.get()
            if isinstance(outcome, BaseException):
                raise outcome
            ready[i] = outcome
            while len(results) in ready:  # reported in the order given
                result = ready.pop(len(results))
                results.append(result)
                _report(result, args.json, bar)
    finally:
        if bar is not None:
            bar.close()
        with lock:  # ends the requests in flight at once
            for admin in connections:
                admin.close()
    return _summary(results, args.json, unmatched, _on_node(args.admin_socket, results))


def _on_node(admin_socket: str | None, results: list[dict[str, Any]]) -> int:
    """How many of the models placed are still on this node now (later ones may have evicted
    earlier ones: a set larger than the tiers), from the daemon's listing, page after page."""
    placed = {r["digest"] for r in results if r["ok"] and r.get("digest")}
    if not placed:
        return 0
    held: set[str] = set()
    offset: int | None = 0
    with AdminConnection(admin_socket) as admin:
        while offset is not None:
            reply = admin.request({"op": "ls", "offset": offset})
            held.update(row["digest"] for row in reply["models"] if row["tiers"])
            offset = reply.get("next")
    return sum(1 for r in results if r["ok"] and r.get("digest") in held)


def _names(admin_socket: str | None, pattern: str) -> Iterator[str]:
    """The catalog's names matching ``pattern``, page after page."""
    offset: int | None = 0
    with AdminConnection(admin_socket) as admin:
        while offset is not None:
            reply = admin.request({"op": "names", "pattern": pattern, "offset": offset})
            yield from reply["names"]
            offset = reply.get("next")


def _expand(
    entries: Iterable[str], admin_socket: str | None, unmatched: list[str]
) -> Iterator[str]:
    seen: set[str] = set()
    for given in entries:
        # names and patterns on stdin as on the command line; blank lines and # comments
        # skipped (a warm list kept in a file, one entry per line)
        lines = (line.strip() for line in sys.stdin) if given == "-" else [given]
        for entry in lines:
            if not entry or (given == "-" and entry.startswith("#")):
                continue
            if _GLOB & set(entry):
                found = list(_names(admin_socket, entry))
                if not found:
                    unmatched.append(entry)
            else:
                found = [entry]
            for name in found:
                if name not in seen:
                    seen.add(name)
                    yield name


def _report(result: dict[str, Any], as_json: bool, bar: Any) -> None:
    if as_json:
        print(json.dumps(result, sort_keys=True), flush=True)
        return
    if not result["ok"]:
        line = f"modelshelf prefetch: {result['model']}: {result['error']}"
        (bar.write if bar is not None else _stderr)(line)
    elif bar is None:  # the fields as the other admin commands print them
        print(pairs({k: v for k, v in result.items() if k != "ok"}), flush=True)
    if bar is not None:
        bar.update(1)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _summary(
    results: list[dict[str, Any]], as_json: bool, unmatched: list[str], on_node: int
) -> int:
    """Print the summary; the exit status of the first failure's error (docs/operations.md,
    "Exit statuses"), else not found's if a pattern matched no model, else busy's if models
    placed were evicted by later ones (the set is larger than the tiers), else 0."""
    failed = [r for r in results if not r["ok"]]
    fetched = sum(1 for r in results if r["ok"] and r["tier"] == "l3")
    placed = len(results) - len(failed)
    summary = {
        "models": len(results),
        "placed": placed,
        "fetched_from_store": fetched,
        "failed": len(failed),
        "unmatched_patterns": len(unmatched),
        "on_node": on_node,
    }
    evicted = placed - on_node
    if as_json:
        print(json.dumps({"summary": summary}, sort_keys=True))
    elif len(results) > 1:
        print(
            f"prefetched {placed} of {summary['models']} models "
            f"({fetched} from the store, the others already on this node); {len(failed)} failed"
        )
    if evicted > 0 and not as_json:
        print(
            f"modelshelf prefetch: only {on_node} of the {placed} models placed are still on "
            f"this node: later ones evicted {evicted} (the set is larger than L1 and L2 hold, "
            "or other requests made room); prefetch fewer, or raise l1_bytes/l2_bytes",
            file=sys.stderr,
        )
    if failed:
        return for_code(failed[0]["code"]).exit_status
    if unmatched:
        return ModelNotFound.exit_status
    return ShelfBusy.exit_status if evicted > 0 else 0
