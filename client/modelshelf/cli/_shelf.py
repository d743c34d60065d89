"""Shelf commands: ``publish``, ``models`` and ``gc`` (on a store directly or through the
daemon) and the operator's view of the node's daemon over its admin socket: status, ls, evict,
pin, unpin, rm, stats (prefetch, many at once: _prefetch.py). Tables for people by default,
sizes and durations in units; ``--json`` for scripts.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import fnmatch
import os
import re
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from ..admin import AdminConnection
from ..errors import ImageError
from ..image import MAGIC, Image
from ..names import ModelRef, parse_ref
from ._output import UsageError, duration, emit, pairs, progress_bar, size, table

_STORE_HELP = "file:///dir, s3://bucket/prefix, gs://bucket/prefix or az://container/prefix"


def add_commands(sub: Any) -> None:
    """Register the shelf commands on the CLI's subparsers."""
    p = sub.add_parser(
        "publish",
        help="publish an image, a .safetensors file or a joblib-pickled estimator as the next "
        "version of NS/NAME",
        description="Publish FILE as the next version of NS/NAME: straight to an object store "
        "with --store URL (streamed from the file, with a progress bar on a terminal), else "
        "through the local daemon's admin socket. FILE is an image, a .safetensors file, or an "
        "estimator saved by joblib (unpickling executes code: trusted files only); the last "
        "two are compiled here first. If the latest version holds the same image, nothing is "
        'published (exit status 0; --json says "unchanged": true) unless --force.',
    )
    p.add_argument("model", metavar="NS/NAME", help="namespace/name; publish assigns the version")
    p.add_argument(
        "file", metavar="FILE",
        help="an image (.msi), a .safetensors file, or an estimator saved by joblib.dump",
    )  # fmt: skip
    p.add_argument("--store", metavar="URL", help=f"publish straight to this store: {_STORE_HELP}")
    p.add_argument(
        "--force", action="store_true",
        help="publish a new version even if the latest one holds the same image",
    )  # fmt: skip
    p.set_defaults(run=_publish)
    p = sub.add_parser(
        "models",
        help="models published in the store: versions, latest size and date",
        description="List the models published in the store that match GLOB (shell-style, "
        "quoted: 'acme/*'): how many versions, and the latest one's size, publication date and "
        "digest. Through the daemon's catalog, or with --store URL straight from a store.",
    )
    p.add_argument(
        "pattern", metavar="GLOB", nargs="?", default="*",
        help="shell-style pattern over ns/name (default: every model)",
    )  # fmt: skip
    p.add_argument("--store", metavar="URL", help=f"list this store directly: {_STORE_HELP}")
    p.set_defaults(run=_models)
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
    p.add_argument("--store", metavar="URL", help=f"collect in this store directly: {_STORE_HELP}")
    p.set_defaults(run=_gc)
    for name, helptext, description, run in (
        ("status", "the daemon's state: tiers, budgets, connections, leases",
         "Show the daemon's state: its store, each tier's use of its budget, connections, "
         "leases, and each client's leased bytes.", _status),
        ("ls", "images on this node: tiers, size, hits, last use, leases, priority, reload cost",
         "List the images this node holds: the versions that resolve to each, size, tiers, "
         "hits, last use, leases, pinned; with the cost-aware policy also PRIORITY, the "
         "image's worth in the highest tier holding it (the lowest is evicted first), and "
         "RELOAD L1/L2, the time bringing it back into shared memory / onto local disk takes, "
         "as measured at its last load (~: estimated from its size and the tier's speed, "
         "before a first measurement).", _ls),
        ("stats", "the daemon's counters: hits and misses per tier, fetches, evictions",
         "Show the daemon's event counters that have moved; --json lists every one "
         "(docs/operations.md, \"Counters\").", _stats),
    ):  # fmt: skip
        p = sub.add_parser(name, help=helptext, description=description)
        p.set_defaults(run=run)
    for name, helptext, description in (
        ("evict", "drop NAME from shared memory, or --tier l2|all (held mappings stay valid)",
         "Drop NAME's image from shared memory (or --tier l2: from local disk; all: both). "
         "Processes that map it keep their mapping. A pinned image is refused."),
        ("pin", "keep NAME in shared memory: never evicted",
         "Place NAME in shared memory (fetching it first if needed) and never evict it."),
        ("unpin", "let NAME be evicted again", "Let NAME's image be evicted again."),
        ("rm", "remove NAME's ref from the store (ns/name without @version: every version, "
         "with --yes); its version numbers are never assigned again",
         "Remove NAME's ref from the store; the image stays. ns/name without @version removes "
         "every version: asked on a terminal, --yes in a script. A version number removed is "
         "never assigned again."),
    ):  # fmt: skip
        p = sub.add_parser(name, help=helptext, description=description)
        named = (
            "ns/name@version, or ns/name for every version (with --yes)"
            if name == "rm"
            else "ns/name[@version] (default: the latest)"
        )
        p.add_argument("model", metavar="NAME", help=named)
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
        p.set_defaults(run=_simple, op=name)


def _publish(args: argparse.Namespace) -> int:
    ref = parse_ref(args.model)
    if ref.version is not None:
        raise UsageError(f"{args.model}: versions are assigned by publish; give NS/NAME")
    path = Path(args.file)
    from ._images import check_model_file

    check_model_file(path)
    with open(path, "rb") as fh:
        is_image = fh.read(len(MAGIC)) == MAGIC
    image: bytes | None = None
    said: list[str] = []  # warnings of the compile (a pickle of another library version)
    if not is_image:  # compiled here: the image is in memory anyway
        from ._images import compile_file, said_once, text_of

        # the same source compiled again is the same image (its "created" is the file's
        # time), so that publishing it again is recognised as unchanged
        os.environ.setdefault("SOURCE_DATE_EPOCH", str(int(path.stat().st_mtime)))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            image, _ = compile_file(path, {"name": text_of(path.stem)})
        said = said_once(caught)
        if not args.json:  # --json: in the document, nothing on stderr
            for line in said:
                print(f"modelshelf publish: warning: {line}", file=sys.stderr)
        Image(image)  # refuse to publish what this runtime could not load
    if args.store:
        reply = _publish_to_store(args, ref, path, image)
    else:
        fd = os.open(path, os.O_RDONLY) if image is None else _memfd(image)
        image = None  # the memfd is the copy the daemon reads
        try:
            reply = _publish_through_daemon(args, ref, fd)
        except ImageError as exc:  # the daemon checked the descriptor: name the file
            shown = re.sub(r"^descriptor \d+: ", "", str(exc))  # the daemon's own number
            raise type(exc)(f"{path}: {shown}") from exc
        finally:
            os.close(fd)
    if args.json:
        emit({**reply, "warnings": said})
    elif reply["unchanged"]:
        print(
            f"unchanged: {ref.key}@{reply['version']} already holds this image "
            f"({reply['digest'][:12]}); nothing published (--force publishes a new version)"
        )
    else:
        print(
            f"published {ref.key}@{reply['version']} ({reply['digest'][:12]}, "
            f"{size(reply['size'])}) to {reply['store']}"
        )
    return 0


def _publish_to_store(
    args: argparse.Namespace, ref: ModelRef, path: Path, image: bytes | None
) -> dict[str, Any]:
    from ..store import Store

    store = Store(args.store)
    if image is not None:
        info = store.publish(ref.namespace, ref.name, image, skip_unchanged=not args.force)
    else:
        total = path.stat().st_size
        bar = progress_bar(
            args, total, unit="B", unit_scale=True, unit_divisor=1024, desc=f"{ref.key}"
        )
        try:
            info = store.publish_file(
                ref.namespace, ref.name, path, skip_unchanged=not args.force,
                progress=bar.update if bar is not None else None,
            )  # fmt: skip
        finally:
            if bar is not None:
                bar.close()
    return {
        "model": info.key,
        "version": info.version,
        "digest": info.digest,
        "size": info.size,
        "unchanged": info.unchanged,
        "store": args.store,
    }


def _memfd(image: bytes) -> int:
    fd = os.memfd_create("modelshelf-publish")
    view = memoryview(image)
    while view:  # one write() moves at most about 2 GiB
        view = view[os.write(fd, view) :]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _publish_through_daemon(args: argparse.Namespace, ref: ModelRef, fd: int) -> dict[str, Any]:
    sent = os.fstat(fd).st_size
    message = {"op": "publish", "model": ref.key, "if_changed": not args.force}
    bar = progress_bar(args, sent, unit="B", unit_scale=True, unit_divisor=1024, desc=ref.key)
    if bar is not None:  # the daemon reports its upload as it goes
        message["progress"] = True
    try:
        with AdminConnection(args.admin_socket) as admin:
            reply = admin.request(
                message, (fd,),
                progress=(lambda done, _: bar.update(done - bar.n)) if bar is not None else None,
            )  # fmt: skip
    finally:
        if bar is not None:
            bar.close()
    return {
        "model": ref.key,
        "version": reply["version"],
        "digest": reply["digest"],
        "size": reply.get("size", sent),
        "unchanged": bool(reply.get("unchanged", False)),  # an older daemon never says
        "store": "the daemon's store",
    }


def _models(args: argparse.Namespace) -> int:
    if args.store:
        rows = _models_in_store(args.store, args.pattern, args.json)
    else:
        rows = []
        with AdminConnection(args.admin_socket) as admin:
            offset: int | None = 0
            while offset is not None:  # pages of at most one message
                reply = admin.request({"op": "models", "pattern": args.pattern, "offset": offset})
                rows.extend(reply["models"])
                offset = reply.get("next")
    if args.json:
        emit(rows)
        return 0
    if not rows:
        print(f"no model matches {args.pattern!r}", file=sys.stderr)
        return 0
    table_rows = [("MODEL", "LATEST", "VERSIONS", "SIZE", "PUBLISHED", "DIGEST")]
    for r in rows:
        table_rows.append(
            (
                r["model"],
                f"@{r['latest']}",
                str(r["versions"]),
                size(r["size"]),
                _when(r["published"]),
                (r["digest"] or r.get("error") or "-")[:12],
            )
        )
    table(table_rows)
    return 0


def _models_in_store(url: str, pattern: str, json_mode: bool) -> list[dict[str, Any]]:
    from concurrent.futures import ThreadPoolExecutor

    from ..errors import MalformedRef, ModelNotFound
    from ..store import Store

    store = Store(url, create=False)
    listing = {k: v for k, v in store.list_refs().items() if fnmatch.fnmatchcase(k, pattern)}

    def row(key: str) -> dict[str, Any]:
        versions = listing[key]
        namespace, name = key.split("/", 1)
        listed = {"model": key, "versions": len(versions), "latest": versions[-1]}
        try:
            info = store.ref(namespace, name, versions[-1])
        except (MalformedRef, ModelNotFound) as exc:
            # one unreadable ref: that model's row says so, as the daemon's does; every other
            # model is still listed (one malformed ref emptied the whole listing)
            if not json_mode:
                print(f"modelshelf models: warning: {exc}", file=sys.stderr)
            return {**listed, "digest": None, "size": None, "published": None, "error": exc.code}
        return {**listed, "digest": info.digest, "size": info.size, "published": info.published}

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(row, sorted(listing)))


def _when(published: str | None) -> str:
    """An ISO 8601 publication time as ``2026-11-29 22:40 UTC``."""
    if not published:
        return "-"
    try:
        when = dt.datetime.fromisoformat(published).astimezone(dt.UTC)
    except ValueError:
        return published
    return when.strftime("%Y-%m-%d %H:%M UTC")


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
    if args.op == "rm" and args.model.endswith("@latest"):
        key = parse_ref(args.model).key
        raise UsageError(
            f"{args.model}: rm takes a version's number ({key}@VERSION: modelshelf models "
            f"{key} lists them), or {key} with --yes for every version; @latest would remove "
            "whichever is newest when the daemon gets the request"
        )
    if args.op == "rm" and parse_ref(args.model).version is None:
        if not (args.yes or _confirm(f"remove every version of {args.model} from the store?")):
            raise UsageError(
                f"{args.model} names every version of the model; give "
                f"{parse_ref(args.model).key}@VERSION to remove one, or --yes to remove them all"
            )
        message["all"] = True
    reply = _call(args, message)
    if args.json:
        emit(reply)
    else:
        print(pairs(reply))
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

        store = Store(args.store, create=False)
        store.check_is_store()  # a typo's directory: not a file deleted, not a snapshot written
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
        emit(reply)
        return 0
    verb = "would remove" if reply["dry_run"] else "removed"
    print(
        f"{verb} {reply['count']} staging objects, {size(reply['bytes'])}"
        + (" (dry run: nothing deleted)" if reply["dry_run"] else " freed")
    )
    for item in reply["objects"]:
        print(f"  {item['path']}  {size(item['size'])}  written {duration(item['age'])} ago")
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


def _status(args: argparse.Namespace) -> int:
    r = _call(args, {"op": "status"})
    if args.json:
        emit(r)
        return 0
    print(f"{r['daemon']}  pid {r['pid']}  up {duration(r['uptime'])}  instance {r['instance']}")
    print(f"ready        {_readiness(r)}")
    since = r.get("store_unreachable_since")
    if since:
        down = time.strftime("%H:%M:%S", time.localtime(since))
        print(f"store        {r['store']}  (unreachable since {down}: {r['store_error']})")
        saved = r.get("catalog_saved_at")
        if saved:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(saved))
            print(f"catalog      saved at {when} by the daemon before (the store has not "
                  "answered since this daemon started)")  # fmt: skip
    else:
        print(f"store        {r['store']}")
    for tier in ("l1", "l2"):
        t = r[tier]
        used = f"{size(t['bytes'])} of {size(t['budget'])}"
        print(f"{tier.upper()}           {used}, {t['count']} images, "
              f"{size(t.get('leased_bytes', 0))} leased")  # fmt: skip
    if r.get("l1_oldest_seconds"):
        print(f"L1 oldest    unused for {duration(r['l1_oldest_seconds'])}")
    c = r["connections"]
    print(f"connections  {c['client']} client, {c['admin']} admin; leases {r['leases']} "
          f"({size(r.get('leased_bytes', 0))}); fetching {r['inflight_fetches']}; "
          f"generation {r['generation']}; pressure {r.get('pressure', 0)}")  # fmt: skip
    shares = r.get("namespaces") or {}
    if shares:  # namespaces with a share of a tier: what their leases hold of it
        held = [("NAMESPACE", "TIER", "LEASED", "SHARE", "ALLOWS")]
        held += [
            (
                ns,
                t.upper(),
                size(row["leased_bytes"]),
                f"{row['share']:.0%}",
                size(row["budget"]),
            )
            for ns, tiers in sorted(shares.items())
            for t, row in sorted(tiers.items())
        ]
        table([("  " + row[0], *row[1:]) for row in held])
    clients = r.get("clients") or []
    if clients:
        rows = [("PID", "UID", "LEASES", "LEASED")]
        rows += [
            (str(x["pid"]), str(x["uid"]), str(x["leases"]), size(x["leased_bytes"]))
            for x in clients
        ]
        table([("  " + row[0], *row[1:]) for row in rows])
    return 0


def _readiness(r: dict[str, Any]) -> str:
    """``yes``, or why not yet: the warm list's progress (readiness waits for it)."""
    warm = r.get("warm") or {}
    if r.get("ready", True):
        if warm.get("models"):
            return (f"yes (warm list: {warm['placed']} of {warm['models']} models placed, "
                    f"{warm['failed']} failed, in {duration(warm['seconds'])})")  # fmt: skip
        return "yes"
    if warm.get("models") is not None and not warm.get("ready", True):
        return (f"no: warming, {warm.get('placed', 0)} of {warm['models']} models placed, "
                f"{warm.get('failed', 0)} failed")  # fmt: skip
    return "no: starting (the catalog is being listed)"


def _ls(args: argparse.Namespace) -> int:
    rows: list[dict[str, Any]] = []
    with AdminConnection(args.admin_socket) as admin:
        offset: int | None = 0
        while offset is not None:  # the daemon answers in pages of at most one message
            reply = admin.request({"op": "ls", "offset": offset})
            rows.extend(reply["models"])
            offset = reply.get("next")
    if args.json:
        emit(rows)
        return 0
    weighed = any("l1_reload_seconds" in r for r in rows)  # not with policy = "lru"
    head = ("MODEL", "DIGEST", "SIZE", "TIERS", "HITS", "LAST USE", "LEASES", "PINNED")
    cells = [head + (("PRIORITY", "RELOAD L1/L2") if weighed else ())]
    for r in rows:
        row = (
            ",".join(r["models"]) or "-",
            r["digest"][:12],
            size(r["size"]),
            "+".join(r["tiers"]) or "-",
            str(r["hits"]),
            f"{duration(r['idle_seconds'])} ago",
            str(r["leases"]),
            "yes" if r["pinned"] else "",
        )
        cells.append(
            (*row, _priority(r), f"{_reload(r, 'l1')}/{_reload(r, 'l2')}") if weighed else row
        )
    table(cells)
    return 0


def _priority(row: dict[str, Any]) -> str:
    """The image's priority in the highest tier that holds it: what the policy evicts by."""
    for tier in ("l1", "l2"):
        value = row.get(f"{tier}_priority")
        if value is not None:
            return f"{value:.2e} {tier}"
    return "-"


def _reload(row: dict[str, Any], tier: str) -> str:
    seconds = row.get(f"{tier}_reload_seconds")
    if seconds is None:
        return "-"
    return ("" if row.get(f"{tier}_reload_measured") else "~") + duration(seconds)


def _stats(args: argparse.Namespace) -> int:
    r = _call(args, {"op": "stats"})
    if args.json:
        emit(r)
        return 0
    counters = r["counters"]
    for key, value in sorted(counters.items()):
        if value:  # the ones that moved; --json has every one
            if "bytes" in key:
                shown = size(value)
            elif key.endswith("_seconds"):
                shown = duration(value)
            else:
                shown = str(value)  # the rest count events
            print(f"{key:<24} {shown}")
    print(f"{'generation':<24} {r['generation']}")
    still = sum(1 for value in counters.values() if not value)
    if still:
        print(f"({still} other counters at 0; --json lists every counter)")
    return 0
