"""Tables, verdicts and plots of the peer benchmark (``bench/peers.py``), from its JSON.

Rows are models, columns contenders. A steady-latency cell is the faster of the contender's
thread settings ("2t" marks the 2-thread one); "ratio to best peer" divides modelshelf's number
by the best number among the contenders that are not modelshelf. "-": the contender cannot load
that model (lleaves and tl2cgen read trees only; the libraries' own loaders exist for XGBoost and
LightGBM); "skipped": its conversion failed (the reason is listed under the tables).
"""

from __future__ import annotations

import statistics
from typing import Any

import numpy as np

from bench._util import OUT, bar_plot, fmt_bytes, fmt_time, machine_summary, markdown_table
from bench.peers_workers import BY_KEY

SHELF = ("ms-numpy", "ms-compiled")
STALL = 2.0  # a call above this multiple of the median is a stall
DEFAULT_THREADS = 1  # modelshelf as shipped: MODELSHELF_THREADS unset (modelshelf._kernels)


def _label(key: str) -> str:
    if key.endswith("-daemon"):
        return BY_KEY[key.removesuffix("-daemon")].label + " via daemon"
    return BY_KEY[key].label


def _best_setting(samples: dict[str, list[float]], key: str) -> tuple[float, str] | None:
    """(median, thread setting) of the contender's fastest setting."""
    found = [
        (statistics.median(ts), v.split("@")[1])
        for v, ts in samples.items()
        if v.split("@")[0] == key
    ]
    return min(found) if found else None


def _peer_best(values: dict[str, float]) -> tuple[float, str] | None:
    peers = [(v, k) for k, v in values.items() if k.split("-daemon")[0] not in SHELF]
    return min(peers) if peers else None


def _ratio_cells(values: dict[str, float], shelf_keys: list[str]) -> list[str]:
    best = _peer_best(values)
    cells = []
    for key in shelf_keys:
        if best is None or key not in values:
            cells.append("-")
        else:
            cells.append(f"{values[key] / best[0]:.2f}x ({_label(best[1])})")
    return cells


def _cell(spec: dict[str, Any], key: str, text: str | None) -> str:
    if text is not None:
        return text
    base = key.removesuffix("-daemon")
    file = BY_KEY[base].file
    return "skipped" if file in spec["skipped"] else "-"


def _steady_table(run: dict[str, Any], rows_key: str) -> tuple[str, dict[str, dict[str, float]]]:
    keys = run["contenders"]
    shelf = [k for k in SHELF if k in keys]
    table, values_by_model = [], {}
    for spec in run["models"]:
        samples = spec["steady"][rows_key]
        values, cells = {}, []
        for key in keys:
            best = _best_setting(samples, key)
            if best is None:
                cells.append(_cell(spec, key, None))
                continue
            values[key] = best[0]
            threads = " 2t" if best[1] == "2" else ""
            cells.append(fmt_time(best[0]) + threads)
        values_by_model[spec["id"]] = values
        table.append([spec["label"], *cells, *_ratio_cells(values, shelf)])
    headers = ["model", *(_label(k) for k in keys), *(f"{_label(k)} / best peer" for k in shelf)]
    return markdown_table(headers, table), values_by_model


def _exact_table(run: dict[str, Any]) -> str:
    keys = run["contenders"]
    table = []
    for spec in run["models"]:
        cells = []
        for key in keys:
            e = spec["steady"]["exact"].get(key)
            if e is None:
                cells.append(_cell(spec, key, None))
                continue
            verdict = "yes" if e["ok"] else f"**NO** (labels {e['labels'] * 100:.1f}% equal)"
            cells.append(f"{e['max_abs']:.1e} {verdict}")
        table.append([spec["label"], *cells])
    return markdown_table(["model", *(_label(k) for k in keys)], table)


def _first_values(spec: dict[str, Any]) -> dict[str, float]:
    return {k: statistics.median(ts) for k, ts in spec["first"].items()}


def _first_table(run: dict[str, Any]) -> str:
    keys = []
    for key in run["contenders"]:
        keys.append(key)
        if key in SHELF:
            keys.append(f"{key}-daemon")
    shelf = [k for k in keys if k.split("-daemon")[0] in SHELF]
    table = []
    for spec in run["models"]:
        values = _first_values(spec)
        cells = [_cell(spec, k, fmt_time(values[k]) if k in values else None) for k in keys]
        table.append([spec["label"], *cells, *_ratio_cells(values, shelf)])
    headers = ["model", *(_label(k) for k in keys)]
    headers += [f"{_label(k)} / best peer" for k in shelf]
    return markdown_table(headers, table)


def _memory_values(spec: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """contender -> (PSS added over all processes, median USS added per process)."""
    out = {}
    for key, results in spec["memory"].items():
        pss = sum(r["after"]["pss"] - r["before"]["pss"] for r in results)
        uss = statistics.median(r["after"]["uss"] - r["before"]["uss"] for r in results)
        out[key] = (float(pss), float(uss))
    return out


def _bytes(n: float) -> str:
    return ("-" if n < 0 else "") + fmt_bytes(abs(n))


def _memory_table(run: dict[str, Any]) -> str:
    keys = run["contenders"]
    shelf = [k for k in SHELF if k in keys]
    table = []
    for spec in run["models"]:
        values = _memory_values(spec)
        cells = []
        for k in keys:
            v = values.get(k)
            cells.append(_cell(spec, k, f"{_bytes(v[0])} / {_bytes(v[1])}" if v else None))
        # a negative PSS change (pages shared with a newcomer) is noise, not a best peer
        pss = {k: v[0] for k, v in values.items() if v[0] > 0}
        ratios = _ratio_cells(pss, shelf)
        table.append([spec["label"], fmt_bytes(spec["image_bytes"]), *cells, *ratios])
    headers = ["model", "image", *(_label(k) for k in keys)]
    headers += [f"{_label(k)} PSS / best peer" for k in shelf]
    return markdown_table(headers, table)


def _stalls(ts: list[float]) -> dict[str, float]:
    a = np.sort(np.asarray(ts))
    p50 = float(np.median(a))
    return {
        "p50": p50,
        "p99": float(np.percentile(a, 99)),
        "max": float(a[-1]),
        "stalls": int(np.sum(a > STALL * p50)),
        "n": len(a),
    }


def busy_values(
    spec: dict[str, Any], key: str, threads: int | None = None
) -> dict[str, float] | None:
    """The stall statistics of the contender's setting with the lowest busy median, or of its
    setting at ``threads`` threads."""
    found = [
        {**_stalls(ts), "threads": int(v.split("@")[1])}
        for v, ts in spec["steady"]["busy"].items()
        if v.split("@")[0] == key and (threads is None or v == f"{key}@{threads}")
    ]
    return min(found, key=lambda s: s["p50"]) if found else None


def _stall_cell(s: dict[str, float]) -> str:
    return (
        f"p99 {s['p99'] / s['p50']:.1f}x, max {s['max'] / s['p50']:.1f}x "
        f"({s['stalls']}/{s['n']} calls > 2x)"
    )


def _busy_table(run: dict[str, Any]) -> str:
    keys = run["contenders"]
    table = []
    for spec in run["models"]:
        cells = []
        for key in keys:
            s = busy_values(spec, key)
            if s is None:
                cells.append(_cell(spec, key, None))
                continue
            flag = f", **{s['stalls']} stalls**" if s["stalls"] else ""
            p99, mx = s["p99"] / s["p50"], s["max"] / s["p50"]
            cells.append(
                f"{fmt_time(s['p50'])} / {fmt_time(s['p99'])} / {fmt_time(s['max'])} "
                f"({p99:.1f}x, {mx:.1f}x{flag})"
            )
        table.append([spec["label"], *cells])
    return markdown_table(["model", *(_label(k) for k in keys)], table)


def _met(cell: str) -> str:
    if cell == "-":
        return ""
    return "met" if float(cell.split("x")[0]) <= 1.0 else "**missed**"


def _verdicts(run: dict[str, Any], v1: Any, v1000: Any) -> str:
    shelf = [k for k in SHELF if k in run["contenders"]]
    rows = []
    for spec in run["models"]:
        for key in shelf:
            r1 = _ratio_cells(v1[spec["id"]], [key])[0]
            r1000 = _ratio_cells(v1000[spec["id"]], [key])[0]

            def met(cell: str) -> str:
                return (
                    "-"
                    if cell == "-"
                    else ("met" if float(cell.split("x")[0]) <= 1.0 else "missed")
                )

            # judged as shipped: one thread, the default (MODELSHELF_THREADS), which the docs
            # keep for a busy node; the faster setting is shown beside it when it differs
            s = busy_values(spec, key, DEFAULT_THREADS) or busy_values(spec, key)
            fastest = busy_values(spec, key)
            assert s is not None and fastest is not None
            stall = f"{s['threads']:g}t: {_stall_cell(s)}"
            stall_ok = "met" if s["stalls"] == 0 else "**missed**"
            if fastest["threads"] != s["threads"]:
                stall_ok += f"; {fastest['threads']:g}t: {_stall_cell(fastest)}"
            load = "-"
            if spec["tree"]:
                values = _first_values(spec)
                daemon = values.get(f"{key}-daemon")
                if daemon is not None and "tl2cgen" in values:
                    ratio = daemon / values["tl2cgen"]
                    load = f"{ratio:.2f}x {'met' if ratio <= 1.0 else '**missed**'}"
                else:
                    load = "tl2cgen skipped"
            rows.append(
                [spec["label"], _label(key), f"{r1} {_met(r1)}", f"{r1000} {_met(r1000)}",
                 f"{stall} {stall_ok}", load]
            )  # fmt: skip
    return markdown_table(
        [
            "model",
            "contender",
            "1 row / best peer (<= 1.0x)",
            "1000 rows / best peer (<= 1.0x)",
            "busy 1000 rows: no call > 2x median (at 1 thread, the default)",
            "load + first via daemon / tl2cgen (<= 1.0x)",
        ],
        rows,
    )


PACKAGES = ("scikit-learn", "xgboost", "lightgbm", "onnxruntime", "skl2onnx", "onnxmltools")
PACKAGES += ("treelite", "tl2cgen", "lleaves", "llvmlite")


def versions() -> str:
    """The peers' versions, as installed where the report is rendered."""
    from importlib import metadata

    found = []
    for name in PACKAGES:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def render(run: dict[str, Any]) -> str:
    a = run["args"]
    t1, v1 = _steady_table(run, "1")
    t1000, v1000 = _steady_table(run, "1000")
    skipped = [
        f"- {spec['id']}: {kind}: {why}"
        for spec in run["models"]
        for kind, why in spec["skipped"].items()
    ]
    la0, la1 = run["load_avg"]
    head = (
        f"Machine: {machine_summary()}; load average {la0[0]:.2f} at the start, {la1[0]:.2f} at "
        f"the end (a VM shared with other work). Steady: {a['repeat']} interleaved rounds of "
        f"{a['budget'] * 1e3:.0f} ms samples, medians; load: {a['load_repeat']} fresh processes "
        f"per loader, median; memory: {a['processes']} processes; stall check: {a['busy']} "
        f"spinning processes, {a['busy_samples']} calls per variant after a 2 ms sleep. "
        f"Run: {run['elapsed']:.0f} s. Peers: {run.get('versions') or versions()}."
    )
    parts = [head]
    if run["kernels"]:
        parts.append(f"modelshelf (compiled) not measured: {run['kernels']}.")
    for key, why in run.get("missing", {}).items():
        parts.append(f"{_label(key)} not measured: its library does not import ({why}).")
    if skipped:
        parts += ["Conversions that failed (contender skipped for that model):", "\n".join(skipped)]
    parts += [
        "Exactness: max abs difference from the estimator's `predict_proba` on 1000 rows, and "
        "whether it is within the contender's precision (1e-9 in float64; 1e-5 where the "
        "contender or the model computes in float32: ONNX Runtime, every XGBoost contender):",
        _exact_table(run),
        "Load + first prediction (one row), fresh process with its library imported, median:",
        _first_table(run),
        "Steady latency, 1 row (faster of 1 and 2 threads; 2t: 2 threads was faster):",
        t1,
        "Steady latency, 1000 rows:",
        t1000,
        f"Memory: PSS added over {a['processes']} processes holding the model / USS added per "
        "process (modelshelf: through the daemon):",
        _memory_table(run),
        f"Stall check, 1000 rows with {a['busy']} busy processes: p50 / p99 / max (p99 and max "
        "as multiples of p50; stalls: calls above 2x p50); each contender's setting with the "
        "lower p50:",
        _busy_table(run),
        "Issue 13, point 5, per model:",
        _verdicts(run, v1, v1000),
    ]
    return "\n\n".join(parts)


def plots(run: dict[str, Any]) -> None:
    keys = run["contenders"]
    labels = [s["id"] for s in run["models"]]
    nan = float("nan")

    def steady(rows_key: str) -> dict[str, list[float]]:
        out = {}
        for key in keys:
            vals = [_best_setting(s["steady"][rows_key], key) for s in run["models"]]
            out[_label(key)] = [v[0] * 1e6 if v else nan for v in vals]
        return out

    bar_plot(OUT / "peers_latency_1.png", "Steady latency, 1 row", labels, steady("1"),
             "microseconds (log)")  # fmt: skip
    bar_plot(OUT / "peers_latency_1000.png", "Steady latency, 1000 rows", labels,
             steady("1000"), "microseconds (log)")  # fmt: skip
    first_keys = [k for k in keys if k not in SHELF] + [f"{k}-daemon" for k in SHELF if k in keys]
    bar_plot(
        OUT / "peers_load.png",
        "Load + first prediction, fresh process (modelshelf via the daemon)",
        labels,
        {
            _label(k): [_first_values(s).get(k, nan) * 1e3 for s in run["models"]]
            for k in first_keys
        },
        "milliseconds (log)",
    )
    bar_plot(
        OUT / "peers_memory.png",
        f"PSS added, {run['args']['processes']} processes holding the model",
        labels,
        {
            _label(k): [_memory_values(s).get(k, (nan, nan))[0] / 1e6 for s in run["models"]]
            for k in keys
        },
        "MB (log)",
    )
    busy = {}
    for key in keys:
        vals = [busy_values(s, key) for s in run["models"]]
        busy[_label(key)] = [v["p99"] * 1e6 if v else nan for v in vals]
    bar_plot(OUT / "peers_busy.png", f"1000 rows, {run['args']['busy']} busy processes: p99",
             labels, busy, "microseconds (log)")  # fmt: skip
