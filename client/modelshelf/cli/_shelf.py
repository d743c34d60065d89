"""Shelf commands: ``publish`` and ``gc`` (on a store directly or through the daemon) and the
operator's view of the node's daemon over its admin socket: status, ls, prefetch (many at
once: _prefetch.py), evict, pin, unpin, rm, stats. Tables for people by default, ``--json``
for scripts.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from ..admin import AdminConnection
from ..image import MAGIC, Image
from ..names import parse_ref
from . import _prefetch


def add_commands(sub: Any) -> None:
    """Register the shelf commands on the CLI's subparsers."""
    p = sub.add_parser(
        "publish",
        help="publish an image (or a joblib-pickled estimator, compiled here) as the next "
        "version of NS/NAME",
        description="Publish FILE as the next version of NS/NAME: straight to an object store "
        "with --store URL, else through the local daemon's admin socket. FILE is an image, or "
        "an estimator saved by joblib (unpickling executes code: trusted files only).",
    )
    p.add_argument("model", metavar="NS/NAME")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--store", metavar="URL", help="file:///dir, s3://bucket/prefix, gs://, az://")
    _admin_arg(p)
    p.set_defaults(run=_publish)
    p = sub.add_parser(
        "gc",
        help="delete the staging objects that publishes killed mid-upload left in the store, "
        "and compact its change feed",
        description="Delete the store's staging objects (KEY#N: uploads that never completed) "
        "not written for --older-than, and say how many bytes that freed; then compact the "
        "change feed (a snapshot of every ref, then the events older than --event-retention "
        "removed): in the daemon's store through its admin socket, or in --store URL "
        "directly. Images and refs are never touched.",
    )
    p.add_argument(
        "--older-than", type=_duration, default=3600.0, metavar="AGE",
        help="only objects not written for AGE: 90s, 30m, 1h (default), 2d, or seconds; a "
        "younger one may be a publish in progress",
    )  # fmt: skip
    p.add_argument(
        "--event-retention", type=_retention, default=3600.0, metavar="AGE",
        help="compact the change feed: write a snapshot of every ref, then remove the events "
        "older than AGE (default 1h, at least 10m: far more than a daemon's poll period and "
        "clock-skew window; a daemon stopped longer reads the snapshot again)",
    )  # fmt: skip
    p.add_argument("--dry-run", action="store_true", help="list what would go; delete nothing")
    p.add_argument("--store", metavar="URL", help="file:///dir, s3://bucket/prefix, gs://, az://")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    _admin_arg(p)
    p.set_defaults(run=_gc)
    for name, helptext, run in (
        ("status", "the daemon's state: tiers, budgets, connections, leases", _status),
        ("ls", "images on this node: tiers, size, hits, last use, leases, versions", _ls),
        ("stats", "the daemon's counters: hits and misses per tier, fetches, evictions", _stats),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--json", action="store_true", help="print one JSON object")
        _admin_arg(p)
        p.set_defaults(run=run)
    for name, helptext in (
        ("evict", "drop NAME from shared memory, or --tier l2|all (held mappings stay valid)"),
        ("pin", "keep NAME in shared memory: never evicted"),
        ("unpin", "let NAME be evicted again"),
        ("rm", "remove NAME's ref from the store (ns/name without @version: every version, "
         "with --yes); its version numbers are never assigned again"),
    ):  # fmt: skip
        p = sub.add_parser(name, help=helptext)
        p.add_argument("model", metavar="NAME", help="ns/name[@version]")
        p.add_argument("--json", action="store_true", help="print the daemon's reply as JSON")
        if name == "rm":
            p.add_argument(
                "--yes", action="store_true",
                help="remove every version of ns/name without asking (required when not "
                "interactive)",
            )  # fmt: skip
        if name == "evict":
            p.add_argument(
                "--tier", choices=("l1", "l2", "all"), default="l1",
                help="l1: shared memory (default); l2: the local-disk copy; all: both",
            )  # fmt: skip
        _admin_arg(p)
        p.set_defaults(run=_simple, op=name)
    _prefetch.add_command(sub, _admin_arg)


def _admin_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--admin-socket",
        metavar="PATH",
        help="the daemon's admin socket (default: $MODELSHELF_ADMIN_SOCKET or the runtime path)",
    )


def _image_fd(path: Path) -> tuple[int, bytes | None]:
    """A read-only descriptor of FILE as an image (compiling it first if it is a pickle)."""
    with open(path, "rb") as fh:
        head = fh.read(len(MAGIC))
    if head == MAGIC:
        return os.open(path, os.O_RDONLY), None
    from ._images import _unpickle

    estimator = _unpickle(path)
    from .. import compile as compile_image

    image = compile_image(estimator, metadata={"name": path.stem})
    Image(image)  # refuse to publish what this runtime could not load
    fd = os.memfd_create("modelshelf-publish")
    os.write(fd, image)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd, image


def _publish(args: argparse.Namespace) -> int:
    ref = parse_ref(args.model)
    if ref.version is not None:
        raise ValueError(f"{args.model}: versions are assigned by publish; give NS/NAME")
    path = Path(args.file)
    fd, _ = _image_fd(path)
    try:
        if args.store:
            from ..store import Store

            with os.fdopen(os.dup(fd), "rb") as fh:
                data = fh.read()
            info = Store(args.store).publish(ref.namespace, ref.name, data)
            version, digest, where = info.version, info.digest, args.store
        else:
            with AdminConnection(args.admin_socket) as admin:
                reply = admin.request({"op": "publish", "model": ref.key}, (fd,))
            version, digest, where = reply["version"], reply["digest"], "the daemon's store"
    finally:
        os.close(fd)
    print(f"published {ref.key}@{version} ({digest[:12]}) to {where}")
    return 0


def _call(args: argparse.Namespace, message: dict[str, Any]) -> dict[str, Any]:
    with AdminConnection(args.admin_socket) as admin:
        reply = admin.request(message)
    reply.pop("ok", None)
    reply.pop("id", None)
    return reply


def _simple(args: argparse.Namespace) -> int:
    message: dict[str, Any] = {"op": args.op, "model": args.model}
    if getattr(args, "tier", None):
        message["tier"] = args.tier
    if args.op == "rm" and parse_ref(args.model).version is None:
        if not (args.yes or _confirm(f"remove every version of {args.model} from the store?")):
            print(
                f"modelshelf rm: error: {args.model} names every version of the model; give "
                f"{args.model}@VERSION to remove one, or --yes to remove them all",
                file=sys.stderr,
            )
            return 2
        message["all"] = True
    reply = _call(args, message)
    if args.json:
        print(json.dumps(reply, indent=2, sort_keys=True))
    else:
        print(" ".join(f"{k}={v}" for k, v in reply.items()))
    return 0


def _confirm(question: str) -> bool:
    """Ask on the terminal; never when stdin is not one (a script must say --yes)."""
    if not sys.stdin.isatty():
        return False
    try:
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:
        return False


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(text: str) -> float:
    """``90``, ``90s``, ``30m``, ``1h``, ``2d`` -> seconds."""
    number, unit = (text[:-1], text[-1]) if text[-1:] in _UNITS else (text, "s")
    try:
        seconds = float(number) * _UNITS[unit]
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < 1e12:  # NaN fails both
        raise argparse.ArgumentTypeError(f"expected an age like 90s, 30m, 1h or 2d, got {text!r}")
    return seconds


MIN_EVENT_RETENTION = 600.0  # seconds: far above any poll period and clock-skew window


def _retention(text: str) -> float:
    seconds = _duration(text)
    if seconds < MIN_EVENT_RETENTION:
        raise argparse.ArgumentTypeError(f"the event retention must be at least 10m, got {text!r}")
    return seconds


def _gc(args: argparse.Namespace) -> int:
    if args.store:
        from .. import feed
        from ..store import Store

        store = Store(args.store)
        stale = store.collect_staged(args.older_than, dry_run=args.dry_run)
        done = feed.compact(store, args.event_retention, dry_run=args.dry_run)
        reply: dict[str, Any] = {
            "feed": dataclasses.asdict(done),
            "store": args.store,
            "dry_run": args.dry_run,
            "count": len(stale),
            "bytes": sum(item.size for item in stale),
            "objects": [
                {"path": item.path, "size": item.size, "age": round(item.age)} for item in stale
            ],
        }
    else:
        message = {
            "op": "gc",
            "older_than": args.older_than,
            "dry_run": args.dry_run,
            "event_retention": args.event_retention,
        }
        reply = _call(args, message)
    if args.json:
        print(json.dumps(reply, indent=2, sort_keys=True))
        return 0
    verb = "would remove" if reply["dry_run"] else "removed"
    print(
        f"{verb} {reply['count']} staging objects, {_size(reply['bytes'])}"
        + (" (dry run: nothing deleted)" if reply["dry_run"] else " freed")
    )
    for item in reply["objects"]:
        print(f"  {item['path']}  {_size(item['size'])}  written {item['age']} s ago")
    if len(reply["objects"]) < reply["count"]:
        print(f"  ... and {reply['count'] - len(reply['objects'])} more")
    compacted = reply.get("feed")
    if compacted:  # a daemon older than the change feed leaves it out
        print(
            f"change feed: {verb} {compacted['events_removed']} events older than "
            f"{args.event_retention:.0f} s and {compacted['snapshots_removed']} old snapshots"
            + (
                f"; snapshot of {compacted['models']} models written"
                if compacted["snapshot"]
                else ""
            )
        )
    if not str(reply["store"]).startswith("file:"):
        print(
            "note: a bucket also keeps the parts of multipart uploads killed midway, which no "
            'listing shows; a lifecycle rule removes them (docs/operations.md, "A publish is '
            'killed mid-upload")'
        )
    return 0


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _status(args: argparse.Namespace) -> int:
    r = _call(args, {"op": "status"})
    if args.json:
        print(json.dumps(r, indent=2, sort_keys=True))
        return 0
    print(f"{r['daemon']}  pid {r['pid']}  up {r['uptime']:.0f} s  instance {r['instance']}")
    since = r.get("store_unreachable_since")
    if since:
        down = time.strftime("%H:%M:%S", time.localtime(since))
        print(f"store        {r['store']}  (unreachable since {down}: {r['store_error']})")
    else:
        print(f"store        {r['store']}")
    for tier in ("l1", "l2"):
        t = r[tier]
        used = f"{_size(t['bytes'])} of {_size(t['budget'])}"
        print(f"{tier.upper()}           {used}, {t['count']} images, "
              f"{_size(t.get('leased_bytes', 0))} leased")  # fmt: skip
    c = r["connections"]
    print(f"connections  {c['client']} client, {c['admin']} admin; leases {r['leases']} "
          f"({_size(r.get('leased_bytes', 0))}); fetching {r['inflight_fetches']}; "
          f"generation {r['generation']}; pressure {r.get('pressure', 0)}")  # fmt: skip
    clients = r.get("clients") or []
    if clients:
        table = [("PID", "UID", "LEASES", "LEASED")]
        table += [
            (str(x["pid"]), str(x["uid"]), str(x["leases"]), _size(x["leased_bytes"]))
            for x in clients
        ]
        widths = [max(len(row[i]) for row in table) for i in range(4)]
        for row in table:
            print("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    return 0


def _ls(args: argparse.Namespace) -> int:
    rows: list[dict[str, Any]] = []
    with AdminConnection(args.admin_socket) as admin:
        offset: int | None = 0
        while offset is not None:  # the daemon answers in pages of at most one message
            reply = admin.request({"op": "ls", "offset": offset})
            rows.extend(reply["models"])
            offset = reply.get("next")
    if args.json:
        print(json.dumps(rows, indent=2, sort_keys=True))
        return 0
    header = ("MODEL", "DIGEST", "SIZE", "TIERS", "HITS", "LAST USE", "LEASES", "PINNED")
    table = [header]
    for r in rows:
        table.append(
            (
                ",".join(r["models"]) or "-",
                r["digest"][:12],
                _size(r["size"]),
                "+".join(r["tiers"]) or "-",
                str(r["hits"]),
                f"{r['idle_seconds']:.0f} s ago",
                str(r["leases"]),
                "yes" if r["pinned"] else "",
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _stats(args: argparse.Namespace) -> int:
    r = _call(args, {"op": "stats"})
    if args.json:
        print(json.dumps(r, indent=2, sort_keys=True))
        return 0
    for key, value in sorted(r["counters"].items()):
        print(f"{key:<24} {value}")
    print(f"{'generation':<24} {r['generation']}")
    return 0
