"""Shared benchmark helpers: timing, worker subprocesses, tables and plots.

Benchmarks print tables and draw PNG plots; they never assert. Timings are medians of repeated
runs, in a process pinned to nothing (the machine has 2 cores; run benchmarks on a quiet one).
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"


def _spin(stop: Any) -> None:
    while not stop.is_set():
        pass


@contextlib.contextmanager
def spinning(n: int) -> Iterator[None]:
    """``n`` processes spinning on the cores for the duration of the block (a busy node)."""
    ctx = multiprocessing.get_context("fork")
    stop = ctx.Event()
    procs = [ctx.Process(target=_spin, args=(stop,), daemon=True) for _ in range(n)]
    for p in procs:
        p.start()
    time.sleep(0.5 if n else 0)
    try:
        yield
    finally:
        stop.set()
        for p in procs:
            p.join()


def median_time(fn: Callable[[], Any], *, repeat: int, number: int = 1) -> float:
    """Median over ``repeat`` runs of the mean time of ``number`` calls, in seconds."""
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - t0) / number)
    return statistics.median(samples)


def budget_time(fn: Callable[[], Any], *, repeat: int, budget: float = 0.05) -> float:
    """Median over ``repeat`` samples of the mean time of enough calls to fill ``budget``
    seconds (one call first, to size the samples), in seconds."""
    t0 = time.perf_counter()
    fn()
    once = time.perf_counter() - t0
    number = max(1, min(2000, int(budget / max(once, 1e-7))))
    return median_time(fn, repeat=repeat, number=number)


def suite_main(
    name: str,
    doc: str | None,
    build: Callable[[str | None], list[dict[str, Any]]],
    worker: str,
    report: Callable[[list[dict[str, Any]]], str],
    plots: Callable[[list[dict[str, Any]]], None],
    models_dir: Path,
) -> None:
    """The command line of a model-suite benchmark: build the models, measure them in one
    worker process, write ``bench/out/<name>.md`` and ``.json`` and the plots."""
    import argparse
    import shutil

    parser = argparse.ArgumentParser(description=(doc or "").split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="samples per timing (median)")
    parser.add_argument("--load-repeat", type=int, default=7, help="loads per model (median)")
    parser.add_argument("--only", help="only models whose id contains this")
    args = parser.parse_args()

    t0 = time.perf_counter()
    built = build(args.only)
    code = worker % {
        "models": json.dumps(built),
        "repeat": args.repeat,
        "load_repeat": args.load_repeat,
    }
    for spec, measured in zip(built, run_worker(code, timeout=1800), strict=True):
        spec.update(measured)
    text = report(built)
    print(text)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.md").write_text(text + "\n")
    (OUT / f"{name}.json").write_text(json.dumps(built, indent=1) + "\n")  # the raw numbers
    plots(built)
    shutil.rmtree(models_dir, ignore_errors=True)
    print(
        f"\nwrote {OUT / (name + '.md')} and PNG plots in {OUT} ({time.perf_counter() - t0:.0f} s)"
    )


def run_worker(code: str, *, env: dict[str, str] | None = None, timeout: float = 600) -> Any:
    """Run ``code`` in a fresh interpreter; it must print one JSON document last."""
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark worker failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fmt_time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} us"


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def machine_summary() -> str:
    import platform

    import numpy as np

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, numpy {np.__version__}"
    )


def bar_plot(
    path: Path,
    title: str,
    labels: Sequence[str],
    series: dict[str, Sequence[float]],
    ylabel: str,
    *,
    log: bool = True,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    x = np.arange(len(labels))
    width = 0.8 / max(1, len(series))
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(labels) + 2), 4.2))
    for i, (name, values) in enumerate(series.items()):
        ax.bar(x + (i - (len(series) - 1) / 2) * width, values, width, label=name)
    ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if log:
        ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def extract(
    ref: str, into: Path, paths: Sequence[str] = ("client/modelshelf", "daemon/modelshelfd")
) -> Path:
    """``paths`` of this repository at git ``ref``, extracted under ``into`` (a baseline to
    measure against); ``into``."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref, *paths], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def baseline_kernels(ref: str, into: Path) -> None:
    """The compiled extension of ``ref``'s own C sources, built in place in ``into`` (where
    ``extract`` put ``ref``'s client): an extension of this tree's sources may answer another
    interface, which the baseline's facade refuses (it would run numpy)."""
    extract(ref, into, ("setup.py",))
    build = into / "build"
    subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "-b", str(build), "-t", str(build)],
        cwd=into, check=True, capture_output=True,
    )  # fmt: skip
    built = list(build.glob("modelshelf/_kernels/_native*.so"))
    if not built:
        raise SystemExit(f"the compiled extension of {ref} could not be built in {build}")
    for so in built:
        shutil.copy(so, into / "client" / "modelshelf" / "_kernels" / so.name)
