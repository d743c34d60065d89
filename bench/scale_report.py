"""Tables and plots of the scale benchmark (``bench/scale.py``), from a scenario run.

``markdown`` renders the summary as bench/out/scale.md; ``per_second`` condenses the raw
requests into a time series for the JSON; ``plots`` draws scale_latency.png, scale_memory.png
and scale_daemon.png (matplotlib, Agg).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench._util import fmt_bytes, markdown_table
from modelshelfd import scenario
from modelshelfd.scenario import format_ms as _ms

_COLORS = {
    "held": "tab:green",
    "checked": "tab:olive",
    "l1": "tab:blue",
    "l2": "tab:orange",
    "l3": "tab:red",
    "unknown": "tab:gray",
    "failed": "black",
}


def _b(value: float | None) -> str:
    return "-" if value is None else fmt_bytes(value)


def markdown(summary: dict[str, Any], params: dict[str, Any], machine: str, img: str) -> str:
    """``img``: where the plots are, relative to the markdown file."""
    r, lat, mem, d = summary["requests"], summary["latency"], summary["memory"], summary["daemon"]
    out = [
        "# Scale benchmark: many models, bounded tiers, long-lived workers",
        "",
        f"Machine: {machine}. Parameters: "
        + ", ".join(f"{k}={v}" for k, v in params.items() if v is not None)
        + ".",
        "",
        "## Goals",
        "",
        markdown_table(
            ["goal", "measured", "result"],
            [
                [g["goal"], g["value"], {True: "met", False: "**missed**", None: "n/a"}[g["met"]]]
                for g in summary["goals"]
            ],
        ),
        "",
        "## Requests",
        "",
        f"{r['issued']:,} issued of {r['scheduled']:,} scheduled ({r['rate']:.1f}/s), "
        f"**{r['failed']:,} failed**; p99 lateness behind the schedule {_ms(r['late_p99_ms'])}.",
        "",
    ]
    if summary["failures"]:
        out += [
            markdown_table(
                ["count", "kind", "example"],
                [[f"{f['count']:,}", f["kind"], f["example"][:160]] for f in summary["failures"]],
            ),
            "",
        ]
    rows = []
    for key in (*scenario.SOURCES, "unknown", "on_node"):
        p = lat[key]
        if key in ("checked", "unknown") and not p["count"]:
            continue
        label = "on the node (held+L1+L2)" if key == "on_node" else scenario.SOURCE_LABELS[key]
        rows.append([label, f"{p['count']:,}", _ms(p["p50"]), _ms(p["p99"]), _ms(p["p999"])])
    p = summary["predict"]
    rows.append(
        ["predict, one row", f"{p['count']:,}", _ms(p["p50"]), _ms(p["p99"]), _ms(p["p999"])]
    )
    out += [
        "## Latency of `client.model()` by source",
        "",
        markdown_table(["source", "count", "p50", "p99", "p99.9"], rows),
        "",
        f"![latency]({img}/scale_latency.png)",
        "",
        "## Memory",
        "",
        markdown_table(
            ["", "peak", "budget"],
            [
                ["L1 (daemon's account)", _b(mem["l1_max"]), _b(mem["l1_budget"])],
                ["/dev/shm segments, pages", _b(mem["shm_max"]), _b(mem["l1_budget"])],
                ["/dev/shm segments, image bytes", _b(mem["shm_apparent_max"]), ""],
                ["/dev/shm, other files (board)", _b(mem["shm_other_max"]), ""],
                ["L2", _b(mem["l2_max"]), _b(mem["l2_budget"])],
                ["leased bytes", _b(mem["leased_bytes_max"]), ""],
                ["leases", str(mem["leases_max"]), ""],
            ],
        ),
        "",
        markdown_table(
            [
                "worker",
                "pid",
                "requests",
                "baseline PSS",
                "peak PSS",
                "growth",
                "median growth",
                "held peak",
                "held budget",
                "models budget",
            ],
            [
                [
                    w["index"],
                    w["pid"],
                    w["issued"],
                    _b(w["baseline_pss"]),
                    _b(w["max_pss"]),
                    _b(w["growth"]),
                    _b(w["growth_median"]),
                    _b(w["held_bytes_max"]),
                    _b(w["held_budget"]),
                    w["held_models_budget"],
                ]
                for w in mem["workers"]
            ],
        ),
        "",
        f"![memory]({img}/scale_memory.png)",
        "",
        "## Daemon",
        "",
        f"CPU {d['cpu_mean']:.1f}% of a core on average after the warm-up (peak "
        f"{d['cpu_max']:.0f}%; the workers {d['workers_cpu_mean']:.0f}% of a core, this "
        f"harness {d['harness_cpu_mean']:.0f}%, the whole machine {d['machine_cpu_mean']:.0f}% "
        "of its cores); "
        f"RSS {_b(d['rss_start'])} -> {_b(d['rss_end'])}, peak {_b(d['rss_max'])}, of which "
        f"anonymous {_b(d['anon_start'])} -> {_b(d['anon_end'])} (the rest maps L1 segments, "
        f"peak {_b(d['shmem_max'])}, and files); slope after the warm-up: "
        + (
            "n/a (under a minute)"
            if d["anon_slope_mb_per_min"] is None
            else f"{d['anon_slope_mb_per_min']:+.2f} MB/min anonymous, "
            f"{d['rss_slope_mb_per_min']:+.2f} MB/min in all"
        )
        + f". Read {_b(summary['store']['bytes_fetched'])} from the store.",
        "",
        markdown_table(
            ["counter", "during the run"],
            [[k, f"{v:,}"] for k, v in sorted(summary["store"]["counters"].items()) if v],
        ),
        "",
        f"![daemon]({img}/scale_daemon.png)",
    ]
    if summary["leftover_segments"]:
        out += ["", f"Left in /dev/shm after the daemon stopped: {summary['leftover_segments']}."]
    logged = summary["daemon_log"]
    if logged["records"]:
        out += [
            "",
            f"The daemon logged {logged['records']} warnings or errors; the last "
            f"{len(logged['last'])} (all in scale_daemon.log):",
            "",
            "```",
            *(line[:300] for line in logged["last"]),
            "```",
        ]
    out += [""] + [f"Note: {n}" for n in summary["notes"]]
    return "\n".join(out).rstrip() + "\n"


def per_second(result: scenario.RunResult) -> dict[str, list[int]]:
    """Requests per second of the run, by source (failures as "failed")."""
    req = result.requests
    if not req:
        return {}
    seconds = int(np.ceil(result.traffic.duration))
    second = np.clip(req["at"].astype(np.int64), 0, seconds - 1)
    return {
        name: np.bincount(second[req["source"] == i], minlength=seconds).tolist()
        for i, name in enumerate(scenario.CODES)
        if (req["source"] == i).any()
    }


def plots(result: scenario.RunResult, summary: dict[str, Any], img: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img.mkdir(parents=True, exist_ok=True)
    paths = [img / "scale_latency.png", img / "scale_memory.png", img / "scale_daemon.png"]
    samples = result.samples
    t = np.array([s["t"] for s in samples], dtype=np.float64)

    def series(key: str) -> np.ndarray:
        return np.array([np.nan if s.get(key) is None else s[key] for s in samples], dtype=float)

    # latency: CDF per source, and requests per second by source
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.5))
    req = result.requests
    for i, name in enumerate(scenario.CODES):
        if name == "failed" or not req:
            continue
        ms = np.sort(req["acquire"][req["source"] == i].astype(np.float64)) * 1e3
        if ms.size:
            y = np.arange(1, ms.size + 1) / ms.size
            ax.plot(
                ms, y, label=f"{scenario.SOURCE_LABELS[name]} ({ms.size:,})", color=_COLORS[name]
            )
    for goal in (scenario.GOAL_P50_MS, scenario.GOAL_P99_MS):
        ax.axvline(goal, color="gray", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("client.model() latency (ms, log)")
    ax.set_ylabel("fraction of requests")
    ax.set_title("acquire latency by source (dotted: 0.1 ms and 5 ms goals)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    counts = per_second(result)
    if counts:
        x = np.arange(len(next(iter(counts.values()))))
        bx.stackplot(x, *counts.values(), labels=list(counts), colors=[_COLORS[k] for k in counts])
        bx.legend(fontsize=8, loc="upper left")
    for start, _tenant in result.bursts:
        bx.axvspan(start, start + result.traffic.burst_seconds, color="gray", alpha=0.12, lw=0)
    bx.set_xlabel("time (s)")
    bx.set_ylabel("requests per second")
    bx.set_title("requests by source over time (shaded: tenant bursts)")
    bx.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(paths[0], dpi=110)
    plt.close(fig)

    # memory: tiers against budgets, and each worker's PSS
    mem = summary["memory"]
    fig, (ax, bx) = plt.subplots(2, 1, figsize=(11, 8), sharex=True)
    for key, label, color in (
        ("l1_bytes", "L1 (daemon's account)", "tab:blue"),
        ("shm_bytes", "/dev/shm segments (pages)", "tab:cyan"),
        ("l2_bytes", "L2", "tab:orange"),
        ("leased_bytes", "leased", "tab:purple"),
    ):
        values = series(key)
        if not np.isnan(values).all():
            ax.plot(t, values / 1e6, label=label, color=color)
    ax.axhline(mem["l1_budget"] / 1e6, color="tab:blue", ls="--", lw=1, label="L1 budget")
    ax.axhline(mem["l2_budget"] / 1e6, color="tab:orange", ls="--", lw=1, label="L2 budget")
    ax.set_ylabel("MB")
    ax.set_title("the daemon's tiers")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    for i, w in enumerate(result.workers):
        pss = np.array(
            [np.nan if s["worker_pss"][i] is None else s["worker_pss"][i] for s in samples],
            dtype=float,
        )
        line = bx.plot(t, pss / 1e6, label=f"worker {i}")[0]
        budget = mem["workers"][i]["held_budget"]
        if budget:
            limit = (w["baseline_pss"] + budget) / 1e6
            bx.axhline(limit, color=line.get_color(), ls="--", lw=0.8)
        held = w.get("held") or []
        if held:
            ht = np.array([h["t"] for h in held])
            hb = np.array([w["baseline_pss"] + h.get("bytes", 0) for h in held]) / 1e6
            bx.plot(ht, hb, color=line.get_color(), ls=":", lw=0.8, alpha=0.6)
    bx.set_xlabel("time (s)")
    bx.set_ylabel("PSS (MB)")
    bx.set_title("workers' PSS (dashed: baseline + held budget; dotted: baseline + held bytes)")
    bx.grid(alpha=0.3)
    bx.legend(fontsize=8, loc="upper left", ncol=3)
    fig.tight_layout()
    fig.savefig(paths[1], dpi=110)
    plt.close(fig)

    # daemon: CPU and RSS
    fig, (ax, bx) = plt.subplots(2, 1, figsize=(11, 6), sharex=True)
    ax.plot(t, series("daemon_cpu"), label="daemon", color="tab:red")
    ax.plot(t, series("workers_cpu"), label="workers together", color="tab:green", lw=0.8)
    ax.plot(
        t, series("machine_cpu"), label="whole machine (% of all cores)", color="tab:gray", lw=0.8
    )
    ax.axhline(scenario.GOAL_CPU_PERCENT, color="tab:red", ls="--", lw=1, label="goal")
    ax.axvline(result.setup.warmup, color="black", ls=":", lw=1, label="end of warm-up")
    ax.set_ylabel("CPU (% of a core; machine: of all)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    bx.plot(t, series("daemon_rss") / 1e6, color="tab:brown", label="RSS")
    bx.plot(t, series("daemon_rss_anon") / 1e6, color="tab:olive", label="anonymous (heap)")
    bx.plot(
        t,
        series("daemon_rss_shmem") / 1e6,
        color="tab:blue",
        lw=0.8,
        label="mapped shared memory (L1)",
    )
    bx.legend(fontsize=8, loc="upper left")
    bx.set_xlabel("time (s)")
    bx.set_ylabel("daemon RSS (MB)")
    bx.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(paths[2], dpi=110)
    plt.close(fig)
    return paths
