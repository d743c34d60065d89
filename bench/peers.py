"""Peer benchmark: modelshelf against ONNX Runtime, tl2cgen, lleaves, joblib and the libraries'
own loaders, side by side in one run (issue 13, points 4 and 5).

    .venv/bin/pip install -e '.[bench]'          # the peers: onnxruntime, skl2onnx, ... (not CI)
    nice -n 5 .venv/bin/python -m bench.peers    # ~22 min on a busy 2-core VM; bench/out/peers.*
    .venv/bin/python -m bench.peers --quick --models logreg,xgb-500   # a short run

For each model of issue 13 (``bench/peers_models.py``) and each contender that can load it
(``bench/peers_workers.py``):

- **exactness**: max abs difference of the probabilities from the original estimator's
  ``predict_proba`` on 1000 rows, and whether it is within the contender's float precision
  (1e-9 in float64, 1e-5 in float32);
- **load + first prediction** of one row, in a fresh worker process that has already imported
  its library, median of ``--load-repeat`` processes; modelshelf also through a real daemon
  (``Client.model`` of a model the daemon holds in L1, the connection made before the clock);
- **steady latency** of 1 row and of 1000 rows: every variant (contender x thread setting, 1 and
  2 threads where the library has threads) held by worker processes; the coordinator asks each
  variant in turn for one sample (A B C A B C ...), ``--repeat`` rounds, medians; a contender's
  number is the faster of its thread settings;
- **memory**: PSS added over ``--processes`` worker processes each holding the model, and USS
  added per process (modelshelf through the daemon);
- **stall check** (point 5): 1000-row calls, each after a 2 ms sleep, with ``--busy`` processes
  spinning on the 2 cores; median, p99 and max per variant; a stall is a call above 2x the
  median.

"modelshelf (compiled)" is measured when ``modelshelf._kernels`` imports, in workers without
``MODELSHELF_KERNELS``; "modelshelf (numpy)" in workers with ``MODELSHELF_KERNELS=numpy``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import peers_report
from bench._util import OUT, ROOT, run_worker, spinning
from bench.peers_models import MODELS, build
from bench.peers_workers import BY_KEY, CONTENDERS

MODELS_DIR = OUT / "peers_models"
GAP = 0.002  # seconds of sleep before each call of the stall check
SETTLE = 0.12  # s between steady samples: OpenBLAS threads spin ~2^28 cycles (~90 ms) after work


def _env(key: str) -> dict[str, str]:
    """The worker environment of a contender: every worker but the compiled one forces numpy."""
    env = {k: v for k, v in os.environ.items() if k != "MODELSHELF_KERNELS"}
    if key != "ms-compiled":
        env["MODELSHELF_KERNELS"] = "numpy"
    return env


def _code(fn: str, args: dict[str, Any]) -> list[str]:
    call = f"from bench.peers_workers import {fn}; {fn}({json.dumps(args)!r})"
    return [sys.executable, "-c", call]


def _paths(spec: dict[str, Any], contenders: list[str]) -> dict[str, str]:
    """contender key -> the path its loader takes, for the contenders that have a file."""
    files = spec["files"]
    out = {}
    for key in contenders:
        if key == "lleaves":  # lleaves reads the model text and its compiled object file
            if "lleaves" in files:
                out[key] = f"{files['native']}|{files['lleaves']}"
        elif BY_KEY[key].file in files:
            out[key] = files[BY_KEY[key].file]
    return out


class Steady:
    """The steady workers of one model: one process per kernel setting, commands in turn."""

    def __init__(self, spec: dict[str, Any], paths: dict[str, str]) -> None:
        groups: dict[str, dict[str, str]] = {}
        for key, path in paths.items():
            groups.setdefault("compiled" if key == "ms-compiled" else "numpy", {})[key] = path
        self.procs: dict[str, subprocess.Popen[str]] = {}
        self.owner: dict[str, subprocess.Popen[str]] = {}
        self.exact: dict[str, Any] = {}
        for group, contenders in groups.items():
            args = {k: spec[k] for k in ("rows", "expected")}
            args.update(model=spec["id"], contenders=contenders)
            key = "ms-compiled" if group == "compiled" else "ms-numpy"
            p = subprocess.Popen(
                _code("steady", args),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                cwd=ROOT,
                env=_env(key),
            )
            self.procs[group] = p
        for p in self.procs.values():
            ready = self._read(p)
            self.exact.update(ready["exact"])
            for v in ready["variants"]:
                self.owner[v] = p
        self.variants = list(self.owner)

    @staticmethod
    def _read(p: subprocess.Popen[str]) -> Any:
        assert p.stdout is not None
        line = p.stdout.readline()
        if not line:
            raise RuntimeError(f"steady worker exited with {p.wait()}")
        return json.loads(line)

    def ask(self, variant: str, **cmd: Any) -> float:
        p = self.owner[variant]
        assert p.stdin is not None
        p.stdin.write(json.dumps({"v": variant, **cmd}) + "\n")
        p.stdin.flush()
        return float(self._read(p)["t"])

    def close(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                assert p.stdin is not None
                p.stdin.write('{"quit": true}\n')
                p.stdin.close()
            p.wait(timeout=60)
            if p.stdout is not None:
                p.stdout.close()


def measure_steady(spec: dict[str, Any], paths: dict[str, str], args: Any) -> dict[str, Any]:
    steady = Steady(spec, paths)
    try:
        out: dict[str, Any] = {"exact": steady.exact, "1": {}, "1000": {}, "busy": {}}
        for n in (1, 1000):
            samples: dict[str, list[float]] = {v: [] for v in steady.variants}
            for _ in range(args.repeat):
                for v in steady.variants:
                    # threads the previous variant left spinning (ONNX Runtime's pool,
                    # OpenBLAS's, modelshelf's workers) would take a core from this sample
                    time.sleep(SETTLE)
                    samples[v].append(steady.ask(v, rows=n, budget=args.budget))
            out[str(n)] = samples
        with spinning(args.busy):
            busy: dict[str, list[float]] = {v: [] for v in steady.variants}
            for _ in range(args.busy_samples):
                for v in steady.variants:
                    busy[v].append(steady.ask(v, rows=1000, gap=GAP))
        out["busy"] = busy
    finally:
        steady.close()
    return out


def measure_first(
    spec: dict[str, Any], paths: dict[str, str], socket: str, args: Any
) -> dict[str, list[float]]:
    """Load + first prediction, one fresh process per sample, the contenders in turn."""
    runs: list[tuple[str, str, dict[str, Any]]] = []
    for key, path in paths.items():
        base = {"contender": key, "model": spec["id"], "rows": spec["rows"]}
        runs.append((key, key, {**base, "path": path}))
        if key.startswith("ms-"):
            runs.append((f"{key}-daemon", key, {**base, "socket": socket, "ref": spec["ref"]}))
    out: dict[str, list[float]] = {name: [] for name, _, _ in runs}
    for _ in range(args.load_repeat):
        for name, key, wargs in runs:
            call = f"from bench.peers_workers import first; first({json.dumps(wargs)!r})"
            out[name].append(float(run_worker(call, env=_env(key), timeout=300)["t"]))
    return out


def _barrier(procs: list[subprocess.Popen[str]], step: str) -> None:
    for p in procs:
        assert p.stdout is not None
        line = p.stdout.readline().strip()
        if line != f"STEP {step}":
            raise RuntimeError(f"memory worker said {line!r}, expected STEP {step}")
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("\n")
        p.stdin.flush()


def measure_memory(
    spec: dict[str, Any], paths: dict[str, str], socket: str, args: Any
) -> dict[str, Any]:
    """N processes per contender hold the model at once; modelshelf through the daemon."""
    out = {}
    for key, path in paths.items():
        wargs = {"contender": key, "model": spec["id"], "rows": spec["rows"], "path": path}
        if key.startswith("ms-"):
            wargs.update(socket=socket, ref=spec["ref"])
        procs = [
            subprocess.Popen(
                _code("memory", wargs),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                cwd=ROOT,
                env=_env(key),
            )
            for _ in range(args.processes)
        ]
        try:
            _barrier(procs, "baseline")
            _barrier(procs, "holding")
            results = []
            for p in procs:
                assert p.stdout is not None
                results.append(json.loads(p.stdout.readline()))
            for p in procs:
                assert p.stdin is not None
                p.stdin.write("\n")
                p.stdin.close()
        finally:
            for p in procs:
                p.wait(timeout=120)
                if p.stdout is not None:
                    p.stdout.close()
        out[key] = results
    return out


def _built(models: list[str], rebuild: bool) -> list[dict[str, Any]]:
    """The models' files, built once and reused by later runs (``--rebuild`` to refit)."""
    from modelshelf.store import Store

    index = MODELS_DIR / "built.json"
    cached: dict[str, Any] = {}
    if index.exists() and not rebuild:
        cached = {s["id"]: s for s in json.loads(index.read_text())}
    missing = [
        m
        for m in models
        if m not in cached or not all(Path(p).exists() for p in cached[m]["files"].values())
    ]
    if missing:
        store = Store((MODELS_DIR / "store").as_uri())
        for spec in build(missing, MODELS_DIR, store):
            cached[spec["id"]] = spec
        index.write_text(json.dumps(list(cached.values()), indent=1) + "\n")
    return [cached[m] for m in models]


def _unimportable(keys: list[str]) -> dict[str, str]:
    """Contender -> why its library does not import here (those are left out of the run)."""
    from bench.peers_workers import IMPORTS

    code = (
        "import importlib, json\n"
        "out = {}\n"
        f"for key, names in {json.dumps({k: IMPORTS[k] for k in keys})}.items():\n"
        "    for name in names.split():\n"
        "        try:\n"
        "            importlib.import_module(name)\n"
        "        except Exception as exc:\n"
        "            out[key] = f'{type(exc).__name__}: {exc}'\n"
        "print(json.dumps(out))"
    )
    return dict(run_worker(code, timeout=300))


def _kernels_available() -> str | None:
    """None when this checkout's compiled core serves models; else why not."""
    env = {k: v for k, v in os.environ.items() if k != "MODELSHELF_KERNELS"}
    code = (
        "import modelshelf\n"
        "try:\n"
        "    from modelshelf import _kernels\n"
        "except ImportError as exc:\n"
        "    print(f'{type(exc).__name__}: {exc}'); raise SystemExit\n"
        "if not _kernels.__file__.startswith(modelshelf.__path__[0]):\n"
        "    print(f'modelshelf._kernels comes from another checkout: {_kernels.__file__}')\n"
        "elif getattr(_kernels, 'mode', lambda: 'numpy')() != 'compiled':\n"
        "    print(f'the extension is not built ({_kernels.__file__})')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, check=False
    )
    why = (proc.stdout + proc.stderr).strip()
    return why.splitlines()[-1] if why else None


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="few samples: minutes, not tens")
    parser.add_argument("--models", help="comma-separated model ids (default: all)")
    parser.add_argument("--repeat", type=int, help="rounds of steady samples (11; quick: 5)")
    parser.add_argument("--budget", type=float, help="seconds per steady sample (0.02; 0.01)")
    parser.add_argument("--load-repeat", type=int, help="fresh processes per loader (5; 3)")
    parser.add_argument("--busy", type=int, default=8, help="spinning processes (stall check)")
    parser.add_argument("--busy-samples", type=int, help="calls per variant, busy (30; 20)")
    parser.add_argument("--processes", type=int, help="processes holding the model (4; 2)")
    parser.add_argument("--rebuild", action="store_true", help="refit and reconvert the models")
    parser.add_argument(
        "--report", action="store_true", help="render peers.md and the plots again from peers.json"
    )
    args = parser.parse_args()
    if args.report:
        _write(json.loads((OUT / "peers.json").read_text()))
        return
    # defaults, and --quick's: a flag given on the command line wins over both
    settings = {"repeat": (11, 5), "budget": (0.02, 0.01), "load_repeat": (5, 3)}
    settings.update(busy_samples=(30, 20), processes=(4, 2))
    for name, (full, quick) in settings.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    all_ids = [m[0] for m in MODELS]
    models = args.models.split(",") if args.models else all_ids
    unknown = sorted(set(models) - set(all_ids))
    if unknown:
        parser.error(f"unknown models {unknown}; known: {', '.join(all_ids)}")

    started = time.perf_counter()
    load_avg = os.getloadavg()
    no_kernels = _kernels_available()
    keys = [c.key for c in CONTENDERS]
    if no_kernels:
        keys.remove("ms-compiled")
        print(f"note: modelshelf (compiled) skipped: {no_kernels}", flush=True)
    missing = _unimportable(keys)
    for key, why in missing.items():
        keys.remove(key)
        print(f"note: {BY_KEY[key].label} skipped: its library does not import ({why})", flush=True)
    built = _built(models, args.rebuild)
    from bench.shelf_daemon import Daemon

    with tempfile.TemporaryDirectory(prefix="peers-") as tmp:
        daemon = Daemon(Path(tmp), (MODELS_DIR / "store").as_uri(), l1="1G", l2="2G")
        try:
            for spec in built:
                daemon.admin("prefetch", model=spec["ref"])
                paths = _paths(spec, keys)
                t0 = time.perf_counter()
                spec["steady"] = measure_steady(spec, paths, args)
                t1 = time.perf_counter()
                spec["first"] = measure_first(spec, paths, daemon.socket, args)
                t2 = time.perf_counter()
                spec["memory"] = measure_memory(spec, paths, daemon.socket, args)
                t3 = time.perf_counter()
                print(f"measured {spec['id']}: steady and busy {t1 - t0:.0f} s, load {t2 - t1:.0f} "
                      f"s, memory {t3 - t2:.0f} s", flush=True)  # fmt: skip
        finally:
            daemon.stop()
    run = {
        "args": vars(args),
        "load_avg": [load_avg, os.getloadavg()],
        "kernels": no_kernels,
        "missing": missing,
        "contenders": keys,
        "versions": peers_report.versions(),
        "elapsed": time.perf_counter() - started,
        "models": built,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "peers.json").write_text(json.dumps(run, indent=1) + "\n")
    _write(run)


def _write(run: dict[str, Any]) -> None:
    """peers.md and the plots of ``run`` (as measured, or as read back by ``--report``)."""
    text = peers_report.render(run)
    print(text)
    (OUT / "peers.md").write_text(text + "\n")
    peers_report.plots(run)
    print(f"\nwrote {OUT / 'peers.md'}, peers.json and peers_*.png in {OUT}")


if __name__ == "__main__":
    main()
