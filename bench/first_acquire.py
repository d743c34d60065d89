"""Load + first prediction of a tree model in a fresh process (issue 13, point 5): through the
daemon, by ``modelshelf.load``, and by tl2cgen's compiled library; this tree against a baseline.

    .venv/bin/python -m bench.first_acquire --baseline REF    # a table, also in bench/out/

The four tree models of the peer benchmark (bench/peers_models.py: RandomForest 200,
HistGradientBoosting 200, LightGBM 500, XGBoost 500; built by ``bench.peers`` into
bench/out/peers_models, or ``--models-dir``). Every sample is one fresh interpreter that imports
numpy and its library (modelshelf, or tl2cgen), loads the rows and, for the daemon, connects
(``Client._connect()``: once per process, not per model); then the clock runs over
``client.model(ref).predict_proba(one_row)``, ``modelshelf.load(image).predict_proba(one_row)``
or tl2cgen's ``Predictor`` (dlopen) + ``predict`` of one row. The baseline is ``git archive REF
client/modelshelf daemon/modelshelfd`` with its own compiled extension built in place
(``baseline_kernels``): a daemon of its own runs from it, and its clients import it (the
compiled kernels on both sides). Within every repetition the contenders run in a shuffled
order; the table gives medians of wall time (what the caller waits, the daemon's work
included) and of the worker's CPU time, and the median per-repetition ratio to tl2cgen.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench._util import OUT, ROOT, baseline_kernels, extract, markdown_table
from bench.shelf_daemon import Daemon

TREES = ("rf-200", "hgb-200", "lgbm-500", "xgb-500")
_LABELS = ("daemon (this)", "daemon (base)", "load (this)", "load (base)", "tl2cgen")

# The sample: a fresh interpreter; everything before the clock is what a serving process has
# done long before its first model (imports, the rows, the connection).
WORKER = r"""
import json, sys, time
import numpy as np
args = json.loads(sys.argv[1])
one = np.load(args["rows"])[:1]
kind = args["kind"]
if kind == "tl2cgen":
    import tl2cgen
    where = tl2cgen.__file__
    w0, c0 = time.perf_counter(), time.thread_time()
    pred = tl2cgen.Predictor(args["path"], nthread=1)
    dtype = pred.threshold_type
    pred.predict(tl2cgen.DMatrix(np.ascontiguousarray(one, dtype=dtype), dtype=dtype))
else:
    import modelshelf
    import modelshelf._kernels as kernels
    where = modelshelf.__file__
    if kernels.mode() != "compiled":
        raise SystemExit(f"the compiled kernels are not active in {where}: build them first")
    if kind == "daemon":
        from modelshelf.client import Client
        client = Client(args["socket"])
        client._connect()
        w0, c0 = time.perf_counter(), time.thread_time()
        client.model(args["ref"]).predict_proba(one)
    else:
        w0, c0 = time.perf_counter(), time.thread_time()
        modelshelf.load(args["path"]).predict_proba(one)
wall, cpu = time.perf_counter() - w0, time.thread_time() - c0
print(json.dumps({"wall": wall, "cpu": cpu, "module": where}))
"""


def _baseline(ref: str, into: Path) -> Path:
    """The client and daemon packages at ``ref`` under ``into``, with their own extension."""
    extract(ref, into)
    baseline_kernels(ref, into)
    return into


def _pythonpath(tree: Path) -> str:
    return f"{tree / 'client'}:{tree / 'daemon'}"


def _sample(env: dict[str, str], args: dict[str, Any], package: Path | None) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", WORKER, json.dumps(args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"a {args['kind']} sample failed:\n{proc.stderr[-3000:]}")
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    if package is not None and not out["module"].startswith(str(package)):
        raise SystemExit(f"the sample imported {out['module']}, expected it under {package}")
    return out


def _tl2cgen_importable(env: dict[str, str]) -> bool:
    code = "import tl2cgen"
    return subprocess.run([sys.executable, "-c", code], env=env, check=False).returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", help="a git ref to compare against (e.g. main)")
    parser.add_argument("--models", default=",".join(TREES))
    parser.add_argument("--repeat", type=int, default=15, help="fresh processes per cell")
    parser.add_argument("--models-dir", type=Path, default=OUT / "peers_models")
    parser.add_argument("--out", type=Path, default=OUT / "first_acquire.md")
    args = parser.parse_args()
    index = args.models_dir / "built.json"
    if not index.exists():
        raise SystemExit(f"{index} is missing: build the models with 'python -m bench.peers'")
    specs = {s["id"]: s for s in json.loads(index.read_text())}
    wanted = [m for m in args.models.split(",") if m]
    unknown = [m for m in wanted if m not in specs]
    if unknown:
        raise SystemExit(f"models {unknown} are not in {index} (it has {sorted(specs)})")
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("MODELSHELF_")}
    trees = {"this": ROOT}
    with tempfile.TemporaryDirectory() as tmp:
        if args.baseline:
            trees["base"] = _baseline(args.baseline, Path(tmp) / "base")
        envs = {name: {**base_env, "PYTHONPATH": _pythonpath(t)} for name, t in trees.items()}
        daemons: dict[str, Daemon] = {}
        try:
            store = (args.models_dir / "store").as_uri()
            for name in trees:
                root = Path(tmp) / f"daemon-{name}"
                daemons[name] = Daemon(root, store, l1="1G", l2="2G", env=envs[name])
            runs: list[tuple[str, dict[str, str], dict[str, Any], Path | None]] = []
            with_tl2cgen = _tl2cgen_importable(envs["this"])
            results: dict[tuple[str, str], list[dict[str, Any]]] = {}
            for model in wanted:
                spec = specs[model]
                for name, tree in trees.items():
                    daemons[name].admin("prefetch", model=spec["ref"])
                    package = tree / "client" / "modelshelf"
                    common = {"rows": spec["rows"]}
                    runs.append(
                        (
                            f"daemon ({name})",
                            envs[name],
                            {**common, "kind": "daemon", "socket": daemons[name].socket,
                             "ref": spec["ref"], "model": model},
                            package,
                        )
                    )  # fmt: skip
                    runs.append(
                        (
                            f"load ({name})",
                            envs[name],
                            {**common, "kind": "load", "path": spec["files"]["image"],
                             "model": model},
                            package,
                        )
                    )  # fmt: skip
                if with_tl2cgen and "tl2cgen" in spec["files"]:
                    runs.append(
                        (
                            "tl2cgen",
                            envs["this"],
                            {**common, "kind": "tl2cgen", "path": spec["files"]["tl2cgen"],
                             "model": model},
                            None,
                        )
                    )  # fmt: skip
            for rep in range(args.repeat):
                order = runs[:]
                random.shuffle(order)
                for label, env, wargs, package in order:
                    key = (wargs["model"], label)
                    results.setdefault(key, []).append(_sample(env, wargs, package))
                print(f"repetition {rep + 1}/{args.repeat}", file=sys.stderr)
        finally:
            for daemon in daemons.values():
                daemon.stop()
    table = _table(wanted, specs, results)
    text = f"{table}\n\n(`{' '.join(sys.argv)}`, {args.repeat} fresh processes per cell)\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


def _table(
    wanted: list[str],
    specs: dict[str, Any],
    results: dict[tuple[str, str], list[dict[str, Any]]],
) -> str:
    rows = []
    for model in wanted:
        peer = results.get((model, "tl2cgen"))
        for label in _LABELS:
            samples = results.get((model, label))
            if samples is None:
                continue
            wall = statistics.median(s["wall"] for s in samples)
            cpu = statistics.median(s["cpu"] for s in samples)
            ratio = "-"
            if peer is not None and label != "tl2cgen":
                pairs = zip(samples, peer, strict=True)  # the same repetition
                ratio = f"{statistics.median(s['wall'] / p['wall'] for s, p in pairs):.2f}x"
            rows.append(
                [specs[model]["label"], label, f"{wall * 1e6:.0f} us", f"{cpu * 1e6:.0f} us", ratio]
            )
    headers = ["model", "contender", "wall (median)", "CPU (median)", "wall / tl2cgen"]
    return markdown_table(headers, rows)


if __name__ == "__main__":
    main()
