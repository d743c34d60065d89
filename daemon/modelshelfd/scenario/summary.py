"""The scenario's summary: the figures of a run, its goals met or missed, and a text report.

``summarize`` turns a ``RunResult`` into a JSON-ready dict: requests and failures by kind;
acquire latency per source and on the node (percentiles in ms); predict latency; peaks of L1,
shared memory, L2 and leases against the budgets; each worker's PSS growth against its held budget;
the daemon's CPU and RSS after the warm-up, with the slope of its anonymous RSS; bytes read
from the store; what the daemon logged. ``report_lines`` prints it for the demo; the benchmark
renders its own tables from the same dict.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from .daemon import LOG_TAIL, log_records
from .workers import CODES, SOURCES

if TYPE_CHECKING:
    from .runner import RunResult

SOURCE_LABELS = {
    "held": "held in-process",
    "checked": "held, checked with daemon",
    "l1": "L1 shared memory",
    "l2": "L2 page cache",
    "l3": "L3 store",
    "unknown": "source unknown",
    "failed": "failed",
}
_ON_NODE = ("held", "checked", "l1", "l2")

# the mission's goals (docs: the scale scenario); each is reported as met or missed
GOAL_P50_MS = 0.1
GOAL_P99_MS = 5.0
GOAL_CPU_PERCENT = 15.0
GOAL_RSS_SLOPE_MB_PER_MIN = 1.0
RSS_MIN_SPAN = 60.0  # seconds of steady state below which an RSS slope says nothing


def _percentiles(seconds: np.ndarray) -> dict[str, Any]:
    if seconds.size == 0:
        return {"count": 0, "p50": None, "p99": None, "p999": None}
    p = np.percentile(seconds.astype(np.float64) * 1e3, [50, 99, 99.9])
    return {"count": int(seconds.size), "p50": p[0], "p99": p[1], "p999": p[2]}


def _max(samples: list[dict[str, Any]], key: str) -> int | None:
    values = [s[key] for s in samples if s.get(key) is not None]
    return max(values) if values else None


def summarize(result: RunResult) -> dict[str, Any]:
    """The figures and the goals of a run, JSON-ready."""
    setup, traffic, req = result.setup, result.traffic, result.requests
    source = req.get("source", np.zeros(0, np.uint8))
    acquire = req.get("acquire", np.zeros(0, np.float32))
    failed_code = CODES.index("failed")
    issued, failed = int(source.size), int((source == failed_code).sum())
    latency = {s: _percentiles(acquire[source == CODES.index(s)]) for s in CODES[:-1]}
    on_node = np.isin(source, [CODES.index(s) for s in _ON_NODE])
    latency["on_node"] = _percentiles(acquire[on_node])
    ok = source != failed_code
    samples = result.samples
    steady = [s for s in samples if s["t"] >= setup.warmup] or samples
    cpu = [s["daemon_cpu"] for s in steady[1:]] or [0.0]

    def rss(key: str, among: list[dict[str, Any]]) -> list[tuple[float, int]]:
        return [(s["t"], s[key]) for s in among if s.get(key)]

    def slope(key: str) -> float | None:
        points = rss(key, steady)
        if len(points) < 3 or points[-1][0] - points[0][0] < RSS_MIN_SPAN:
            return None
        t, r = np.array(points, dtype=np.float64).T
        return float(np.polyfit(t / 60.0, r / 1e6, 1)[0])

    total, anon = rss("daemon_rss", samples), rss("daemon_rss_anon", samples)
    workers = []
    for i, w in enumerate(result.workers):
        pss = [s["worker_pss"][i] for s in samples if s["worker_pss"][i] is not None]
        top = max(pss) if pss else None
        held = w.get("held") or []
        last = held[-1] if held else {}
        workers.append({
            "index": i, "pid": w["pid"], "baseline_pss": w["baseline_pss"], "max_pss": top,
            "growth": None if top is None else top - w["baseline_pss"],
            # a model larger than the held budget is mapped while in use, never kept: the
            # peak can catch one mid-predict; the median shows the held set itself
            "growth_median": None if not pss else int(np.median(pss)) - w["baseline_pss"],
            "issued": w.get("issued"),
            # the bound the client applied (its own, or the daemon's advice), else the asked
            "held_budget": last.get("max_bytes", setup.held_bytes),
            "held_models_budget": last.get("max_models", setup.held_models),
            "held_bytes_max": max((h["bytes"] for h in held if "bytes" in h), default=None),
            "largest_model": w.get("largest_model", 0),
        })  # fmt: skip
    fetched = result.counters.get("bytes_fetched")
    summary: dict[str, Any] = {
        "requests": {
            "scheduled": result.scheduled,
            "issued": issued,
            "failed": failed,
            "not_issued": result.scheduled - issued,
            "rate": issued / traffic.duration if traffic.duration else 0.0,
            "late_p99_ms": _percentiles(req.get("late", np.zeros(0)))["p99"],
        },
        "failures": sorted(
            ({"kind": k, "count": c, "example": e[:300]} for k, (c, e) in result.errors.items()),
            key=lambda f: -f["count"],
        ),
        "latency": latency,
        "predict": _percentiles(req.get("predict", np.zeros(0))[ok]),
        "memory": {
            "l1_budget": setup.l1_bytes,
            "l1_max": _max(samples, "l1_bytes"),
            "shm_max": _max(samples, "shm_bytes"),
            "shm_apparent_max": _max(samples, "shm_apparent_bytes"),
            "shm_other_max": _max(samples, "shm_other_bytes"),
            "l2_budget": setup.l2_bytes,
            "l2_max": _max(samples, "l2_bytes"),
            "leases_max": _max(samples, "leases"),
            "leased_bytes_max": _max(samples, "leased_bytes"),
            "held_bytes": setup.held_bytes,
            "held_models": setup.held_models,
            "workers": workers,
        },
        "daemon": {
            "cpu_mean": float(np.mean(cpu)),
            "cpu_max": float(np.max(cpu)),
            "rss_start": total[0][1] if total else None,
            "rss_end": total[-1][1] if total else None,
            "rss_max": _max(samples, "daemon_rss"),
            "rss_slope_mb_per_min": slope("daemon_rss"),
            "anon_start": anon[0][1] if anon else None,
            "anon_end": anon[-1][1] if anon else None,
            "anon_max": _max(samples, "daemon_rss_anon"),
            "anon_slope_mb_per_min": slope("daemon_rss_anon"),
            "shmem_max": _max(samples, "daemon_rss_shmem"),
            "machine_cpu_mean": float(np.mean([s["machine_cpu"] for s in steady])),
            "workers_cpu_mean": float(np.mean([s["workers_cpu"] for s in steady[1:]] or [0.0])),
            "harness_cpu_mean": float(np.mean([s["harness_cpu"] for s in steady[1:]] or [0.0])),
        },
        "store": {"bytes_fetched": fetched, "counters": result.counters},
        "leftover_segments": result.leftover_segments,
        "daemon_log": log_records(result.daemon_log),
        "notes": result.notes,
    }
    summary["goals"] = _goals(summary)
    return summary


def _goals(s: dict[str, Any]) -> list[dict[str, Any]]:
    mem, node, d = s["memory"], s["latency"]["on_node"], s["daemon"]

    def goal(name: str, value: str, met: bool | None) -> dict[str, Any]:
        return {"goal": name, "value": value, "met": met}

    def under(value: float | None, limit: float | None) -> bool | None:
        return None if value is None or limit is None else value <= limit

    # A worker maps its held set (<= its budget) and the model it is using, which may have
    # left the held set (or be too large for it) while the application still references it.
    judged = [w for w in mem["workers"] if w["growth"] is not None and w["held_budget"]]
    over = [w for w in judged if w["growth"] > w["held_budget"] + w["largest_model"]]
    worst = max(
        judged, key=lambda w: w["growth"] - w["held_budget"] - w["largest_model"], default=None
    )
    return [
        goal("zero failed requests", f"{s['requests']['failed']:,} failed",
             s["requests"]["failed"] == 0),
        goal("L1 never above budget",
             f"max {format_mb(mem['l1_max'])} of {format_mb(mem['l1_budget'])} MB",
             under(mem["l1_max"], mem["l1_budget"])),
        goal("shared memory never above the L1 budget",
             f"max {format_mb(mem['shm_max'])} MB of pages "
             f"({format_mb(mem['shm_apparent_max'])} MB of images) of "
             f"{format_mb(mem['l1_budget'])} MB",
             under(mem["shm_max"], mem["l1_budget"])),
        goal("each worker's PSS within its baseline + held budget + the model in use",
             "n/a (no held budget known)" if worst is None else
             f"{len(over)} of {len(judged)} over; worst: +{format_mb(worst['growth'])} MB for a "
             f"budget of {format_mb(worst['held_budget'])} MB + a model of up to "
             f"{format_mb(worst['largest_model'])} MB in use "
             f"({len([w for w in judged if w['growth'] > w['held_budget']])} above the held "
             "budget alone)",
             None if worst is None else not over),
        goal(f"on-node acquire p50 <= {GOAL_P50_MS} ms", format_ms(node["p50"]),
             under(node["p50"], GOAL_P50_MS)),
        goal(f"on-node acquire p99 <= {GOAL_P99_MS:g} ms", format_ms(node["p99"]),
             under(node["p99"], GOAL_P99_MS)),
        goal(f"daemon CPU <= {GOAL_CPU_PERCENT:g}% of a core at 150 req/s",
             f"{d['cpu_mean']:.1f}% at {s['requests']['rate']:.0f} req/s",
             d["cpu_mean"] <= GOAL_CPU_PERCENT),
        goal(f"daemon RSS flat: its anonymous part <= {GOAL_RSS_SLOPE_MB_PER_MIN:g} MB/min",
             "n/a (under a minute of steady state)" if d["anon_slope_mb_per_min"] is None
             else f"{d['anon_slope_mb_per_min']:+.2f} MB/min (all of RSS: "
                  f"{_signed(d['rss_slope_mb_per_min'])} MB/min)",
             under(d["anon_slope_mb_per_min"], GOAL_RSS_SLOPE_MB_PER_MIN)),
    ]  # fmt: skip


def _signed(value: float | None) -> str:
    return "?" if value is None else f"{value:+.2f}"


def format_mb(n: Any) -> str:
    if n is None:
        return "?"
    return f"{n / 1e6:,.1f}" if abs(n) < 100e6 else f"{n / 1e6:,.0f}"


def format_ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1e3:.1f} us" if value < 1 else f"{value:.2f} ms"


def report_lines(summary: dict[str, Any], *, p999: bool = True) -> Iterator[str]:
    """The summary as plain text: requests, failures, latency per source, memory, daemon."""
    r, lat, mem, d = summary["requests"], summary["latency"], summary["memory"], summary["daemon"]
    yield (
        f"requests: {r['issued']:,} issued of {r['scheduled']:,} scheduled "
        f"({r['rate']:.0f}/s), {r['failed']:,} failed; p99 lateness {format_ms(r['late_p99_ms'])}"
    )
    for f in summary["failures"][:8]:
        yield f"  {f['count']:>7,} x {f['example'][:150]}"
    head = f"{'acquire latency by source':<28} {'count':>8} {'p50':>10} {'p99':>10}"
    yield ""
    yield head + (f" {'p99.9':>10}" if p999 else "")

    def row(label: str, p: dict[str, Any]) -> str:
        line = f"  {label:<26} {p['count']:>8,} "
        line += f"{format_ms(p['p50']):>10} {format_ms(p['p99']):>10}"
        return line + (f" {format_ms(p['p999']):>10}" if p999 else "")

    rows = [*SOURCES, "unknown", "on_node"]
    for key in rows:
        p = lat[key]
        if key in ("checked", "unknown") and not p["count"]:
            continue
        yield row("on the node (held+L1+L2)" if key == "on_node" else SOURCE_LABELS[key], p)
    yield row("predict, one row", summary["predict"])
    yield ""
    growth = [w["growth"] for w in mem["workers"] if w["growth"] is not None]
    budgets = sorted({w["held_budget"] for w in mem["workers"] if w["held_budget"] is not None})
    held = "/".join(format_mb(b) for b in budgets) + " MB" if budgets else "not reported"
    leased = mem["leased_bytes_max"]
    yield (
        f"memory: L1 peak {format_mb(mem['l1_max'])} of {format_mb(mem['l1_budget'])} MB; "
        f"segments peak {format_mb(mem['shm_max'])} MB of pages "
        f"({format_mb(mem['shm_apparent_max'])} MB of images); "
        f"L2 peak {format_mb(mem['l2_max'])} of {format_mb(mem['l2_budget'])} MB; "
        f"leases peak {mem['leases_max']}"
        + ("" if leased is None else f" ({format_mb(leased)} MB leased)")
    )
    if growth:
        peaks = [w["held_bytes_max"] for w in mem["workers"] if w["held_bytes_max"] is not None]
        yield (
            f"workers: PSS at most {format_mb(min(growth))}..{format_mb(max(growth))} MB above "
            f"their baseline ({format_mb(mem['workers'][0]['baseline_pss'])} MB), typically "
            f"{format_mb(max(w['growth_median'] or 0 for w in mem['workers']))} MB; held set peak "
            + (f"{format_mb(max(peaks))} MB" if peaks else "not reported")
            + f", budget {held} each"
        )
    slope = d["anon_slope_mb_per_min"]
    yield (
        f"daemon: CPU {d['cpu_mean']:.1f}% of a core (max {d['cpu_max']:.0f}%; workers "
        f"{d['workers_cpu_mean']:.0f}%, harness {d['harness_cpu_mean']:.0f}%, machine "
        f"{d['machine_cpu_mean']:.0f}% of all cores); RSS {format_mb(d['rss_start'])} -> "
        f"{format_mb(d['rss_end'])} MB, "
        f"of which anonymous {format_mb(d['anon_start'])} -> {format_mb(d['anon_end'])} MB"
        + ("" if slope is None else f" ({slope:+.2f} MB/min)")
        + f"; read {format_mb(summary['store']['bytes_fetched'])} MB from the store"
    )
    if summary["leftover_segments"]:
        yield f"left in /dev/shm after the daemon stopped: {summary['leftover_segments']} files"
    logged = summary["daemon_log"]
    if logged["records"]:
        yield (
            f"the daemon logged {logged['records']} warnings or errors (within the last "
            f"{LOG_TAIL // 1000} KB of its log); the last: {logged['last'][-1][:240]}"
        )
    for note in summary["notes"]:
        yield f"note: {note}"
