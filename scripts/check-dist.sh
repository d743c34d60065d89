#!/usr/bin/env bash
# Check what users install: build the sdist and a wheel from a clean archive of HEAD (untracked
# and uncommitted files cannot leak in), check their contents, then install each into a fresh
# venv holding numpy only and check that it predicts, bit for bit, what the numpy runtime does:
#   1. the wheel: the compiled kernels ship in it (mode "compiled");
#   2. the sdist, built by pip with the system compiler ($CC, else cc): compiled too;
#   3. the sdist with CC=/bin/false (no usable compiler): it installs all the same, the numpy
#      runtime serves, and `import modelshelf` says why in exactly one line of debug logging.
# The test models (two tree ensembles, two text pipelines: every family with a compiled kernel)
# are compiled by the repository's Python ($PYTHON, else .venv/bin/python; it needs
# scikit-learn), whose numpy runtime gives the expected predictions. DIST_OUT=DIR keeps the
# sdist and the wheel there. Needs git, and pip's access to an index (numpy, setuptools, build).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || command -v "$PY" >/dev/null || { echo "no $PY: run scripts/test.sh first" >&2; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/modelshelf-dist.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
numpy=$("$PY" -c 'import numpy; print(numpy.__version__)')
rev=$(git rev-parse HEAD)

echo "==> [${SECONDS}s] building the sdist and the wheel from git archive HEAD (${rev:0:12})"
mkdir "$tmp/src"
git archive --format=tar "$rev" | tar -x -C "$tmp/src"
"$PY" -m venv "$tmp/tools"
"$tmp/tools/bin/python" -m pip install --quiet --disable-pip-version-check build
# the fresh venvs get no pip of their own (copying one in costs seconds each): this one installs
pip=("$tmp/tools/bin/python" -m pip --disable-pip-version-check)
(cd "$tmp/src" && "$tmp/tools/bin/python" -m build --outdir "$tmp/dist" .) >"$tmp/build.log" 2>&1 ||
  { cat "$tmp/build.log" >&2; echo "python -m build failed (log above)" >&2; exit 1; }
sdist=$(echo "$tmp"/dist/*.tar.gz)
wheel=$(echo "$tmp"/dist/*.whl)
if [ -n "${DIST_OUT:-}" ]; then mkdir -p "$DIST_OUT" && cp "$sdist" "$wheel" "$DIST_OUT"/; fi

echo "==> [${SECONDS}s] contents: $(basename "$sdist"), $(basename "$wheel")"
git ls-tree -r --name-only "$rev" >"$tmp/tracked"  # what git archive exported
"$PY" - "$sdist" "$wheel" "$tmp/tracked" <<'PY'
import re, sys, sysconfig, tarfile, zipfile

sdist, wheel, tracked = sys.argv[1:]
tracked = set(open(tracked).read().split("\n")) - {""}
with tarfile.open(sdist) as tar:
    files = {m.name.split("/", 1)[1] for m in tar.getmembers() if m.isfile()}
# setuptools writes these; everything else must be a tracked file (no build output, no caches)
made = {"PKG-INFO", "setup.cfg"}
extra = sorted(n for n in files - tracked - made if not n.startswith("modelshelf.egg-info/"))
assert not extra, f"the sdist holds files that are not in git: {extra}"
sources = {n for n in tracked if re.fullmatch(r"client/modelshelf/_kernels/[^/]+\.[ch]", n)}
needed = sources | {"setup.py", "pyproject.toml", "MANIFEST.in", "LICENSE", "README.md"}
missing = sorted(needed - files)
assert not missing, f"the sdist lacks {missing}: it could not build the kernels (MANIFEST.in)"
assert any(n.endswith(".h") for n in sources) and len(sources) > 2, sources

with zipfile.ZipFile(wheel) as whl:
    inside = whl.namelist()
native = [n for n in inside if re.fullmatch(r"modelshelf/_kernels/_native\..*(so|pyd)", n)]
assert native, f"the wheel has no compiled kernels (modelshelf/_kernels/_native*): {inside}"
c_files = [n for n in inside if n.endswith((".c", ".h"))]
assert not c_files, f"the wheel carries C sources it never uses: {c_files}"
# cp311-cp311-linux_x86_64 here: the interpreter's ABI and the platform, never py3-none-any
abi = "cp{}{}".format(*sys.version_info[:2])
platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
tag = wheel.rsplit("-", 3)[1:]
tag[-1] = tag[-1].removesuffix(".whl")
assert tag == [abi, abi, platform], f"wheel tags {tag}, expected {[abi, abi, platform]}"
# the extension needs only libc: no rpath naming the machine that built it (setup.py drops
# the interpreter's own); readelf comes with the compiler's binutils
import shutil, subprocess, tempfile
if shutil.which("readelf"):
    with tempfile.TemporaryDirectory() as d, zipfile.ZipFile(wheel) as whl:
        so = whl.extract(native[0], d)
        dynamic = subprocess.run(["readelf", "-d", so], capture_output=True, text=True).stdout
    paths = [line for line in dynamic.splitlines() if "RPATH" in line or "RUNPATH" in line]
    assert not paths, f"the wheel's extension carries a library path: {paths}"
print(f"    sdist: {len(files)} files, {len(sources)} C sources; wheel: {native[0]}, {'-'.join(tag)}")
PY

echo "==> [${SECONDS}s] test models, compiled and predicted by $PY (numpy $numpy, numpy runtime)"
mkdir "$tmp/case"
PYTHONPATH="$tmp/src/client" MODELSHELF_KERNELS=numpy "$PY" - "$tmp/case" <<'PY'
import json, sys, warnings
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestClassifier
from sklearn.feature_extraction.text import HashingVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline

import modelshelf

warnings.simplefilter("ignore", ConvergenceWarning)  # a few epochs make a model all the same
out = Path(sys.argv[1])
rng = np.random.default_rng(13)
X = rng.normal(size=(300, 6))
y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(int)
y3 = (X[:, 0] > 0) + (X[:, 3] > 0.5)  # three classes: the softmax link
X_missing = np.where(rng.random(X.shape) < 0.1, np.nan, X)  # the missing-value rules
words = "shelf model tree leaf root image kernel numpy wheel sdist byte bit node".split()
texts = [" ".join(rng.choice(words, size=rng.integers(1, 9))) for _ in range(120)]
labels = np.array([("tree" in t) + ("bit" in t) for t in texts])
cases = {
    "forest": (RandomForestClassifier(8, max_depth=6, random_state=0).fit(X, y), X, "predict_proba"),
    "boosting": (HistGradientBoostingRegressor(max_iter=20).fit(X_missing, X[:, 0]), X_missing, "predict"),
    "tfidf": (make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(texts, labels), texts, "predict_proba"),
    "hashing": (make_pipeline(HashingVectorizer(n_features=2**10), LogisticRegression()).fit(texts, labels), texts, "predict_proba"),
    "logistic": (LogisticRegression().fit(X, y3), X, "predict_proba"),
    "mlp": (MLPClassifier((16,), max_iter=50, random_state=0).fit(X, y), X, "predict_proba"),
}
expected = {}
for name, (estimator, inputs, method) in cases.items():
    image = modelshelf.compile(estimator)
    (out / f"{name}.msh").write_bytes(image)
    if isinstance(inputs, list):
        (out / f"{name}.json").write_text(json.dumps(inputs))
    else:
        np.save(out / f"{name}.npy", inputs)
    expected[name] = getattr(modelshelf.load(image), method)(inputs)
np.savez(out / "expected.npz", **expected)
(out / "cases.json").write_text(json.dumps({name: case[2] for name, case in cases.items()}))
PY
cat >"$tmp/verify.py" <<'PY'
"""Run in a fresh venv: predict every test model, compare with the expected bits."""
import json, sys
from pathlib import Path

import numpy as np

import modelshelf
from modelshelf import _kernels

expect = sys.argv[1]
where = Path(modelshelf.__file__)
assert where.is_relative_to(sys.prefix), f"modelshelf imported from {where}, not {sys.prefix}"
assert _kernels.mode() == expect, f"kernels: expected {expect}, found {_kernels.mode()} ({_kernels._why})"
served = set()  # the families a compiled kernel took at load
for family in ("trees", "vocabulary", "hashing", "dense", "dense_forward"):
    def spy(*args, _family=family, _kernel=getattr(_kernels, family)):
        kernel = _kernel(*args)
        if kernel is not None:
            served.add(_family)
        return kernel
    setattr(_kernels, family, spy)
expected = np.load("expected.npz")
for name, method in json.loads(Path("cases.json").read_text()).items():
    text = Path(f"{name}.json")
    inputs = json.loads(text.read_text()) if text.exists() else np.load(f"{name}.npy")
    got = getattr(modelshelf.load(Path(f"{name}.msh").read_bytes()), method)(inputs)
    ref = expected[name]
    if got.dtype != ref.dtype or got.shape != ref.shape:
        sys.exit(f"{name}: {expect} kernels give {got.dtype} {got.shape}, numpy {ref.dtype} {ref.shape}")
    bits = f"u{ref.itemsize}"  # floats compared as bits: -0.0 is not 0.0, a NaN is itself
    differ = np.argwhere(got.view(bits) != ref.view(bits))
    if len(differ):
        at = tuple(int(i) for i in differ[0])
        sys.exit(f"{name}: {expect} kernels differ from the numpy runtime in {len(differ)} "
                 f"values, first at {at}: {got[at].item()!r} != {ref[at].item()!r}")
wanted = {"trees", "vocabulary", "hashing", "dense", "dense_forward"} if expect == "compiled" else set()
assert served == wanted, f"compiled kernels served {sorted(served)}, expected {sorted(wanted)}"
print(f"    {expect}: {len(expected.files)} models, bit for bit the numpy runtime's predictions")
PY

# install ARTIFACT into a fresh venv NAME (numpy first: the client's only dependency) with the
# environment given after it, then check it predicts in mode EXPECT, and as numpy when told to
check() {
  local name=$1 artifact=$2 expect=$3; shift 3
  local venv="$tmp/$name"
  echo "==> [${SECONDS}s] $name: $(basename "$artifact") into a fresh venv${*:+ ($*)}"
  "$PY" -m venv --without-pip "$venv"
  "${pip[@]}" --python "$venv/bin/python" install --quiet "numpy==$numpy"
  env "$@" "${pip[@]}" --python "$venv/bin/python" install --quiet --no-deps "$artifact"
  (cd "$tmp/case" && env -u PYTHONPATH -u MODELSHELF_KERNELS "$venv/bin/python" "$tmp/verify.py" "$expect")
  (cd "$tmp/case" && env -u PYTHONPATH MODELSHELF_KERNELS=numpy "$venv/bin/python" "$tmp/verify.py" numpy)
}
check wheel "$wheel" compiled
check sdist "$sdist" compiled
check no-compiler "$sdist" numpy CC=/bin/false

echo "==> [${SECONDS}s] no-compiler: the import says why, in one line of debug logging"
venv="$tmp/no-compiler"
if compgen -G "$venv/lib/python*/site-packages/modelshelf/_kernels/_native*" >/dev/null; then
  echo "CC=/bin/false still built the kernels: $(ls "$venv"/lib/python*/site-packages/modelshelf/_kernels/)" >&2
  exit 1
fi
said=$(cd "$tmp" && env -u PYTHONPATH -u MODELSHELF_KERNELS "$venv/bin/python" -c '
import logging
logging.basicConfig(level=logging.DEBUG, format="%(name)s %(levelname)s %(message)s")
import modelshelf' 2>&1)
echo "    $said"
want="modelshelf._kernels DEBUG modelshelf kernels: numpy (the compiled extension is not built ("
if [ "$(printf '%s\n' "$said" | wc -l)" -ne 1 ] || [[ "$said" != "$want"* ]]; then
  echo "expected exactly one line starting with '$want', found the above" >&2
  exit 1
fi
echo "==> [${SECONDS}s] dist OK"
