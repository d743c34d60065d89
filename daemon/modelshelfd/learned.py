"""What the daemon learned of its images, kept across a restart: ``cache_dir/learned.json``.

The cost-aware policies learn each image's reload times (per tier), its gaps between uses and
its last use; the shelf counts its hits. A restarted daemon knew none of it: every image it
adopted from L2 was ranked on estimates, ``ls`` showed no hits and a last use at the start, and
the first evictions after a restart chose on nothing. The daemon now writes what it learned
when it stops (and every few minutes, so that a killed daemon loses little), and reads it back
before it adopts its L2 files.

The file is the daemon's own, in its private ``cache_dir``, written whole to ``tmp/`` and
renamed into place (``saved.write_atomically``). It is read as untrusted all the same: bounded
in size and in rows, every digest, count and time checked, anything else refused whole (logged;
the daemon then starts knowing nothing, as before). It holds digests and numbers only: no model
names. Times are kept as ages (seconds before the write), since another run's monotonic clock
has another origin; the seconds the daemon was down are added at the read.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .saved import LEARNED_RECORD, SavedCatalogError, read_regular, write_atomically

FORMAT = 1
MAX_IMAGES = 1 << 16  # rows per tier, and entries: what a policy remembers (MAX_GHOSTS)
MAX_LEARNED_BYTES = 64 << 20  # 3 x 65,536 rows of about 150 bytes, with room
SAVE_SECONDS = 300.0  # a daemon killed (not stopped) loses at most this much of what it learned
_DIGEST = re.compile(r"[0-9a-f]{64}")
_MAX_COUNT = 1 << 53
MAX_SECONDS = 1e9  # an age or gap beyond (31 years) is read as this much: it means "long ago"
_MAX_CONTAINERS = 6 * MAX_IMAGES  # JSON objects and arrays: one per row, a few more
_RATES = (1.0, 1e13)  # bytes per second a tier's loads can have been measured at


_saving = threading.Lock()
_written: dict[Path, float] = {}  # cache_dir -> when its newest file was taken (monotonic)


class LearnedError(ValueError):
    """The file cannot be used (unreadable, malformed)."""


@dataclass(frozen=True)
class Learned:
    """A run's learning as ``load`` read it: ``policies`` by tier name (each what
    ``CostAwarePolicy.learned`` returns), ``entries`` digest -> (hits, seconds since the last
    use), ``elapsed`` the seconds from the write to the read."""

    policies: dict[str, dict[str, Any]]
    entries: dict[str, tuple[int, float]]
    elapsed: float


def save(
    cache_dir: Path,
    policies: dict[str, dict[str, Any]],
    entries: dict[str, tuple[int, float]],
    taken: float | None = None,
) -> None:
    """Write ``cache_dir/learned.json`` atomically (through ``cache_dir/tmp``). ``taken``:
    when the snapshot was taken (monotonic); one older than the file written last is not
    written (the periodic save, cancelled at the stop, still running in its thread)."""
    with _saving:
        if taken is not None and taken < _written.get(cache_dir, -math.inf):
            return
        _save(cache_dir, policies, entries)
        if taken is not None:
            _written[cache_dir] = taken


def _save(
    cache_dir: Path, policies: dict[str, dict[str, Any]], entries: dict[str, tuple[int, float]]
) -> None:
    body = {
        "format": FORMAT,
        "saved_at": time.time(),
        "policies": policies,
        "entries": {digest: [hits, age] for digest, (hits, age) in entries.items()},
    }
    data = json.dumps(body, separators=(",", ":")).encode()
    write_atomically(cache_dir / LEARNED_RECORD, cache_dir / "tmp", data)


def load(cache_dir: Path, tiers: tuple[str, ...]) -> Learned | None:
    """What was saved in ``cache_dir`` (None if nothing was), for the policies of ``tiers``.
    Raises LearnedError if it cannot be used."""
    path = cache_dir / LEARNED_RECORD
    try:
        raw = read_regular(path, MAX_LEARNED_BYTES)
    except SavedCatalogError as exc:
        raise LearnedError(str(exc)) from exc
    if raw is None:
        return None
    containers = raw.count(b"{") + raw.count(b"[")
    if containers > _MAX_CONTAINERS:  # before parsing: 64 MiB of "{}," parsed to 1.7 GiB
        raise LearnedError(f"{containers} JSON objects and arrays, at most {_MAX_CONTAINERS}")
    try:
        return _parse(json.loads(raw), tiers)
    except (ValueError, TypeError, KeyError, RecursionError) as exc:
        raise LearnedError(f"malformed: {exc}") from exc


def _parse(body: Any, tiers: tuple[str, ...]) -> Learned:
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise ValueError(f"not a format-{FORMAT} file")
    saved_at = _number(body["saved_at"], "saved_at")  # wall-clock time: not clamped
    policies: dict[str, dict[str, Any]] = {}
    raw_policies = _object(body["policies"], "policies")
    for tier in tiers:
        if tier in raw_policies:
            policies[tier] = _policy(_object(raw_policies[tier], tier), tier)
    entries: dict[str, tuple[int, float]] = {}
    raw_entries = _object(body["entries"], "entries", MAX_IMAGES)
    for digest, row in raw_entries.items():
        _digest(digest)
        if not isinstance(row, list) or len(row) != 2:
            raise ValueError(f"entry {digest[:12]}: expected [hits, age]")
        entries[digest] = (_count(row[0], "hits"), _seconds(row[1], "age"))
    elapsed = max(time.time() - saved_at, 0.0)  # a clock set back: no time passed
    return Learned(policies, entries, elapsed)


def _policy(raw: dict[str, Any], tier: str) -> dict[str, Any]:
    loaded = raw["loaded"]
    if not isinstance(loaded, list) or len(loaded) != 2:
        raise ValueError(f"{tier}: loaded must be [bytes, seconds]")
    nbytes, secs = (_number(v, f"{tier}: loaded") for v in loaded)
    low, high = _RATES
    if not (nbytes > 0 and secs > 0 and low <= nbytes / secs <= high):
        raise ValueError(
            f"{tier}: loaded must be bytes and seconds of {low:g} to {high:g} bytes per "
            f"second, got {nbytes!r:.40} and {secs!r:.40}"
        )
    mean_gap = raw["mean_gap"]
    if mean_gap is not None:
        mean_gap = _seconds(mean_gap, f"{tier}: mean_gap")
    images = {}
    for key, row in _object(raw["images"], f"{tier}: images", MAX_IMAGES).items():
        _digest(key)
        if not isinstance(row, list) or len(row) != 5:
            raise ValueError(f"{tier}: image {key[:12]}: expected [uses, gap, gap2, cost, age]")
        uses, gap, gap2, cost, age = row
        images[key] = [
            _count(uses, "uses"),
            _seconds(gap, "gap"),
            _seconds(gap2, "gap2", MAX_SECONDS * MAX_SECONDS),
            None if cost is None else _seconds(cost, "cost"),
            _seconds(age, "age"),
        ]
    return {"loaded": [nbytes, secs], "mean_gap": mean_gap, "images": images}


def _object(value: Any, what: str, limit: int | None = None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be an object")
    if limit is not None and len(value) > limit:
        raise ValueError(f"{what}: {len(value)} rows, at most {limit}")
    return value


def _digest(value: Any) -> None:
    if not isinstance(value, str) or not _DIGEST.fullmatch(value):
        raise ValueError(f"{str(value)[:80]!r} is not a digest (64 lowercase hex characters)")


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_COUNT:
        raise ValueError(f"{what} must be a whole number from 0 to 2**53, got {value!r:.40}")
    return value


def _number(value: Any, what: str) -> float:
    """A finite number >= 0 (JSON has no NaN, but Python's json reads one)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{what} must be a number, got {value!r:.40}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{what} must be finite, from 0, got {value!r:.40}")
    return float(value)


def _seconds(value: Any, what: str, most: float = MAX_SECONDS) -> float:
    """A time (or a square of one): a finite number >= 0, at most ``most`` (more is read as
    ``most``: long ago; the policy's arithmetic on 1e308 overflowed to NaN)."""
    return min(_number(value, what), most)
