"""Tables and plots of the shelf benchmark, from the results ``bench/shelf.py`` gathers.

Kept apart from the measuring so that a saved ``bench/out/shelf.json`` can be rendered again:
``.venv/bin/python -m bench.shelf_report``.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from bench._util import OUT, bar_plot, fmt_bytes, fmt_time, machine_summary, markdown_table
from bench.shelf_profile import PROFILED_ACQUIRES

GB = 1e9


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def _l1(results: dict[str, Any]) -> list[str]:
    l1 = results["l1"]
    rows, steps, held = [], [], []
    for b in results["sizes"]:
        s, j = l1["shelf"][b["label"]], l1["joblib"][b["label"]]
        first, fresh = s["first"], s["fresh"]
        ok = first["p50"] <= 100e-6 and first["p99"] <= 500e-6
        rows.append(
            [
                b["label"],
                b["kind"],
                fmt_bytes(b["image_bytes"]),
                fmt_time(first["p50"]),
                fmt_time(first["p99"]),
                fmt_time(fresh["p50"]),
                fmt_time(fresh["p99"]),
                fmt_time(j["load"]["p50"]),
                fmt_time(j["load"]["p99"]),
                fmt_time(j["mmap"]["p50"]),
                f"{j['load']['p50'] / first['p50']:.0f}x",
                _verdict(ok),
            ]
        )
        st = dict(s["steps"])
        ping = st.pop("ping round trip (floor)")
        steps.append(
            [
                b["label"],
                *(fmt_time(v) for v in st.values()),
                fmt_time(sum(st.values())),
                fmt_time(ping),
            ]
        )
        each = s["held_each"]
        held.append(
            [
                b["label"],
                fmt_time(s["held_mean"]),
                fmt_time(each["p50"]),
                fmt_time(each["p99"]),
                fmt_time(s["timer"]),
                _verdict(s["held_mean"] <= 2e-6),
            ]
        )
    step_names = list(l1["shelf"][results["sizes"][0]["label"]]["steps"])[:-1]
    n = l1["shelf"][results["sizes"][0]["label"]]["first"]["n"]
    return [
        f"**1. Acquire of an L1 image by a process that has not used it** ({n} samples per size; "
        "between samples the process calls `client.release(ref)` and drops the Model, so each "
        "`client.model(ref)` is a full acquire: round trip, descriptor, `mmap`, image parse, "
        'executor; the connection stays open. "fresh Client" adds connect + hello + board map '
        "per sample. joblib: `joblib.load` of the same model in a process that imported "
        "scikit-learn, page cache warm. Daemon L1 warmed by `prefetch`; L1 misses during the "
        f"run: {l1['misses']}.) Goal: p50 <= 100 us, p99 <= 500 us, flat across sizes.",
        markdown_table(
            [
                "image",
                "kind",
                "bytes",
                "acquire p50",
                "acquire p99",
                "fresh Client p50",
                "fresh Client p99",
                "joblib.load p50",
                "joblib.load p99",
                "joblib mmap_mode=r p50",
                "joblib/shelf p50",
                "goal",
            ],
            rows,
        ),
        "Breakdown of the acquire (medians; the client's steps replayed one by one; \"ping round "
        'trip": a `ping` request on the same connection, the floor of any request):',
        markdown_table(["image", *step_names, "sum", "ping round trip (floor)"], steps),
        "**2. `client.model(ref)` of a held model** (mean of 200,000 calls; p50/p99 of 20,000 "
        "calls timed one by one, which include the `perf_counter_ns` pair). Goal: <= 2 us.",
        markdown_table(["image", "mean", "p50", "p99", "timer overhead", "goal"], held),
    ]


def _rate(size: int, seconds: float) -> str:
    return f"{size / seconds / GB:.2f} GB/s"


def _below(results: dict[str, Any]) -> list[str]:
    rows = []
    for tier, runs_by_cache in (
        ("L2", {k: [v["results"]] for k, v in results["l2"].items()}),
        ("L3", results["l3"]),
    ):
        for cache, runs in runs_by_cache.items():
            for b in results["sizes"]:
                per = [r[b["label"]] for r in runs if b["label"] in r]
                if not per:
                    continue
                size = per[0]["size"]
                acq = statistics.median(r["acquire"] for r in per)
                floor = statistics.median(r["floor"] for r in per)
                reused = statistics.median(r["reused"] for r in per)
                crc = statistics.median(r["crc"] for r in per)
                sha = statistics.median(r["sha"] for r in per)
                write = statistics.median(r["write"] for r in per)
                rows.append(
                    [
                        tier,
                        cache,
                        b["label"],
                        fmt_time(acq),
                        _rate(size, acq),
                        fmt_time(floor),
                        _rate(size, floor),
                        f"{acq / floor:.1f}x",
                        _rate(size, reused),
                        _rate(size, crc),
                        _rate(size, sha),
                        _rate(size, write) if write else "-",
                    ]
                )
    l2 = results["l2"]
    hits = {k: v["l2_hits"] for k, v in l2.items()}
    fetches = [r["_fetches"] for runs in results["l3"].values() for r in runs]
    return [
        "**3. L2 and L3 acquire of large images.** L2: the image is evicted from L1 (`evict`), "
        "the daemon copies its disk file into a new segment and verifies it. L3: a fresh daemon "
        "with an empty cache dir fetches from the `file://` store, verifies, writes L2 (fsync) "
        'and places the image in L1. "plain read": `open().readinto` of the same file (the L2 '
        "file, or the store's object file) into fresh memory (faulted in during the read, as "
        'the daemon\'s new segment is); "read, buffer touched": the same into memory already '
        'faulted in (the cost of reading alone). "cold": the source file pushed '
        "out of the page cache (`posix_fadvise(DONTNEED)`) before each sample; the VM's disk "
        "may itself be cached by the host. The last three columns are what the daemon does on "
        "top of the read, measured alone on the same bytes: structure + CRC-32 "
        "(`Image.verify`), SHA-256 (`hashlib`), and for L3 writing + fsyncing the L2 copy. "
        f"(L2 hits counted by the daemon: {hits}; L3 fetches per cold daemon: {fetches}.)",
        markdown_table(
            [
                "tier",
                "page cache",
                "image",
                "acquire",
                "acquire rate",
                "plain read",
                "read rate",
                "acquire/read",
                "read, buffer touched",
                "verify CRC-32",
                "SHA-256",
                "write+fsync",
            ],
            rows,
        ),
    ]


def _density(results: dict[str, Any]) -> list[str]:
    dense, dens = results["dense"], results["density"]
    image_bytes = sum(b["image_bytes"] for b in dense)
    pickle_bytes = sum(b["joblib_bytes"] for b in dense)
    rows = []
    totals = {}
    for kind in ("shelf", "joblib"):
        procs = dens[kind]
        pss = sum(p["after"]["pss"] - p["before"]["pss"] for p in procs)
        uss = statistics.mean(p["after"]["uss"] - p["before"]["uss"] for p in procs)
        totals[kind] = pss
        rows.append(
            [
                "modelshelf (`client.model`)" if kind == "shelf" else "joblib.load",
                len(procs),
                fmt_bytes(pss),
                f"{pss / image_bytes:.2f}x",
                f"{pss / pickle_bytes:.2f}x",
                fmt_bytes(uss),
            ]
        )
    n = len(dense)
    ok = totals["shelf"] <= 1.1 * image_bytes
    return [
        f"**4. Density: {len(dens['shelf'])} processes using the same {n} models** (logistic "
        f"regressions of 150-300 features x 40-60 classes; images {fmt_bytes(image_bytes)} in "
        f"total, {fmt_bytes(image_bytes / n)} each on average; pickles "
        f"{fmt_bytes(pickle_bytes)}). Each process loads every model and predicts one row with "
        "it (every page touched); total PSS = sum over the processes of PSS while all hold their "
        "models, minus each one's PSS measured before acquiring (after imports and, for the "
        "shelf, after connecting). Goal: shelf <= 1.1x the image bytes, against ~8x for joblib. "
        f"Result: {_verdict(ok)}. The daemon itself: PSS {fmt_bytes(dens['daemon_pss'])} "
        "(segments are not mapped in the daemon: it holds descriptors only).",
        markdown_table(
            [
                "loader",
                "processes",
                "total PSS added",
                "/ image bytes",
                "/ pickle bytes",
                "USS added per process",
            ],
            rows,
        ),
    ]


def _profile_rows(rows: list[list[Any]], limit: int = 10) -> list[list[str]]:
    # the event loop waiting in epoll is idle time, not work
    # and functions called less than once per acquire are startup, not the acquire path
    kept = [r for r in rows if "epoll" not in r[0] and "select" not in r[0] and r[3] >= 0.5]
    kept = kept[:limit]
    return [[f"`{r[0]}`", fmt_time(r[1]), fmt_time(r[2]), f"{r[3]:.2f}"] for r in kept]


def _diagnosis(results: dict[str, Any]) -> list[str]:
    diag, l1 = results["diagnosis"], results["l1"]["shelf"]
    rows = []
    for label, res in diag["nopoll"].items():
        a, b = l1[label]["first"], res["first"]
        rows.append(
            [label, fmt_time(a["p50"]), fmt_time(a["p99"]), fmt_time(b["p50"]), fmt_time(b["p99"])]
        )
    heap = results["density"]["heap"]
    head = ["function", "own time / acquire", "cumulative / acquire", "calls / acquire"]
    return [
        "**Diagnostics.** L1 acquire with the catalog poll (which lists every ref of the store "
        "each `ref_poll_seconds`, 2 s by default) effectively off (`ref_poll_seconds` = 3600), "
        "in a second daemon on the same store:",
        markdown_table(
            ["image", "p50 (poll 2 s)", "p99 (poll 2 s)", "p50 (poll off)", "p99 (poll off)"],
            rows,
        ),
        f"cProfile of {PROFILED_ACQUIRES} acquire + release cycles of the 10 KB model, daemon "
        "side (the daemon run under `python -m cProfile`; functions called at least once per "
        "cycle; profiler overhead inflates every call: read proportions):",
        markdown_table(head, _profile_rows(diag["daemon"])),
        "Client side of the same cycles:",
        markdown_table(head, _profile_rows(diag["client"])),
        f"Python heap per held model (tracemalloc, one client holding the {heap['models']} "
        f"density models, one prediction each): {fmt_bytes(heap['per_model'])} per model; "
        "largest sources:",
        markdown_table(
            ["allocated at", "bytes / model"], [[f"`{t[0]}`", f"{t[1]:.0f}"] for t in heap["top"]]
        ),
    ]


def render(results: dict[str, Any]) -> str:
    parts = [f"Machine: {machine_summary()} (a 2-core VM shared with other workers)"]
    parts += _l1(results) + _below(results) + _density(results) + _diagnosis(results)
    parts.append(f"Whole run: {results['elapsed']:.0f} s.")
    return "\n\n".join(parts)


def render_l1(results: dict[str, Any], elapsed: float) -> str:
    """Items 1 and 2 alone (``bench.shelf --l1-only``)."""
    import os

    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    parts = [f"Machine: {machine_summary()} (a 2-core VM shared with other workers; load "
             f"average at the end {load})"]  # fmt: skip
    parts += _l1(results)
    parts.append(f"Whole run: {elapsed:.0f} s.")
    return "\n\n".join(parts)


def plots(results: dict[str, Any], out: Path) -> list[Path]:
    sizes = results["sizes"]
    labels = [b["label"] for b in sizes]
    l1 = results["l1"]
    paths = [out / "shelf_acquire.png", out / "shelf_tiers.png", out / "shelf_density.png"]
    bar_plot(
        paths[0],
        "Acquire of an L1 image (p50 / p99) vs joblib.load",
        labels,
        {
            "shelf p50": [l1["shelf"][x]["first"]["p50"] * 1e6 for x in labels],
            "shelf p99": [l1["shelf"][x]["first"]["p99"] * 1e6 for x in labels],
            "joblib.load p50": [l1["joblib"][x]["load"]["p50"] * 1e6 for x in labels],
            "joblib.load p99": [l1["joblib"][x]["load"]["p99"] * 1e6 for x in labels],
        },
        "microseconds (log)",
    )
    tier_labels: list[str] = []
    acquire: list[float] = []
    floor: list[float] = []
    reused: list[float] = []
    for tier, runs_by_cache in (
        ("L2", {k: [v["results"]] for k, v in results["l2"].items()}),
        ("L3", results["l3"]),
    ):
        for cache, runs in runs_by_cache.items():
            for b in sizes:
                per = [r[b["label"]] for r in runs if b["label"] in r]
                if per:
                    size = per[0]["size"]
                    tier_labels.append(f"{tier} {cache} {b['label']}")
                    acquire.append(size / statistics.median(r["acquire"] for r in per) / GB)
                    floor.append(size / statistics.median(r["floor"] for r in per) / GB)
                    reused.append(size / statistics.median(r["reused"] for r in per) / GB)
    bar_plot(
        paths[1],
        "L2 / L3 acquire vs plain read of the same file",
        tier_labels,
        {"acquire": acquire, "plain read": floor, "read, buffer touched": reused},
        "GB/s",
        log=False,
    )
    image_bytes = sum(b["image_bytes"] for b in results["dense"])
    dens = results["density"]
    total = {
        k: sum(p["after"]["pss"] - p["before"]["pss"] for p in dens[k]) / image_bytes
        for k in ("shelf", "joblib")
    }
    bar_plot(
        paths[2],
        f"Total PSS of {len(dens['shelf'])} processes holding the same models",
        ["modelshelf", "joblib.load"],
        {"PSS / image bytes": [total["shelf"], total["joblib"]]},
        "x image bytes",
        log=False,
    )
    return paths


if __name__ == "__main__":
    saved = json.loads((OUT / "shelf.json").read_text())
    print(render(saved))
    plots(saved, OUT)
