"""``modelshelf compile`` and ``modelshelf inspect``, run as the installed console script on real
files: exit statuses, what they print, and what they write."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.base import BaseEstimator
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import modelshelf
from modelshelf.image import ImageBuilder

# the code under test (PYTHONPATH), not the console script installed from another checkout
SCRIPT = [sys.executable, "-m", "modelshelf.cli"]


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SCRIPT, *map(str, args)], capture_output=True, text=True, timeout=120)


class Unsupported(BaseEstimator):
    """Pickles by reference to this module, which the CLI's process can import too."""

    def fit(self, X: Any, y: Any = None) -> Unsupported:
        self.n_features_in_ = X.shape[1]
        return self


@pytest.fixture(scope="module")
def iris() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_iris(return_X_y=True)
    return X, y


@pytest.fixture(scope="module")
def pipeline(iris: tuple[np.ndarray, np.ndarray]) -> Any:
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(*iris)


@pytest.fixture()
def image_file(tmp_path: Path, iris: tuple[np.ndarray, np.ndarray]) -> Path:
    est = LogisticRegression(max_iter=1000).fit(iris[0], np.array(["a", "b", "c"])[iris[1]])
    path = tmp_path / "iris.msi"
    path.write_bytes(modelshelf.compile(est, metadata={"name": "iris", "team": "search"}))
    return path


def test_script_is_installed() -> None:
    assert Path(sys.executable).with_name("modelshelf").is_file()
    result = run("--help")
    assert result.returncode == 0
    assert "compile" in result.stdout and "inspect" in result.stdout


def test_compile_help_warns_that_the_pickle_is_executed() -> None:
    result = run("compile", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "EXECUTES the code it contains" in text and "trusted source" in text


# -- compile -------------------------------------------------------------------------------------


def test_compile_writes_a_loadable_image(
    tmp_path: Path, pipeline: Any, iris: tuple[np.ndarray, np.ndarray]
) -> None:
    src = tmp_path / "churn.joblib"
    joblib.dump(pipeline, src)
    out = tmp_path / "churn.msi"
    result = run(
        "compile",
        src,
        "-o",
        out,
        "--name",
        "churn-v2",
        "--meta",
        "team=growth",
        "--meta",
        "commit=abc=1",
    )
    assert result.returncode == 0, result.stderr
    model = modelshelf.load(out, verify=True)
    assert model.kind in result.stdout and str(out) in result.stdout
    np.testing.assert_allclose(
        model.predict_proba(iris[0]), pipeline.predict_proba(iris[0]), rtol=1e-9
    )
    assert model.metadata["name"] == "churn-v2"
    assert model.metadata["extra"] == {"team": "growth", "commit": "abc=1"}
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_compile_names_the_model_after_the_file_and_overwrites(
    tmp_path: Path, iris: tuple[np.ndarray, np.ndarray]
) -> None:
    src = tmp_path / "scaler.joblib"
    joblib.dump(StandardScaler().fit(iris[0]), src)
    out = tmp_path / "scaler.msi"
    out.write_bytes(b"old contents")
    result = run("compile", src, "-o", out)
    assert result.returncode == 0, result.stderr
    model = modelshelf.load(out)
    assert model.metadata["name"] == "scaler" and hasattr(model, "transform")


def test_compile_refuses_an_unsupported_estimator(
    tmp_path: Path, iris: tuple[np.ndarray, np.ndarray]
) -> None:
    src = tmp_path / "odd.joblib"
    joblib.dump(Unsupported().fit(iris[0]), src)
    out = tmp_path / "odd.msi"
    result = subprocess.run(
        [*SCRIPT, "compile", str(src), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        # so that the pickle's class, in this module, can be imported there too
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                [str(Path(__file__).parents[3]), os.environ.get("PYTHONPATH", "")]
            ),
        },
    )
    assert result.returncode == 1
    assert result.stderr.startswith("modelshelf compile: error: modelshelf cannot compile ")
    assert "Unsupported" in result.stderr and "supported_estimators()" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_compile_reports_a_file_joblib_cannot_load(tmp_path: Path) -> None:
    src = tmp_path / "junk.joblib"
    src.write_bytes(b"this is not a pickle")
    result = run("compile", src, "-o", tmp_path / "junk.msi")
    assert result.returncode == 2  # bad input
    assert f"cannot load {src} with joblib" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    result = run("compile", tmp_path / "missing.joblib", "-o", tmp_path / "x.msi")
    assert result.returncode == 2 and "no such file" in result.stderr


def test_a_fifo_or_a_device_is_not_a_regular_file_not_a_missing_one(tmp_path: Path) -> None:
    """A FIFO or /dev/null was reported as "no such file"."""
    import os

    fifo = tmp_path / "model.msi"
    os.mkfifo(fifo)
    for args in (
        ("compile", "/dev/null", "-o", tmp_path / "x.msi"),
        ("publish", "t/a", fifo, "--store", (tmp_path / "s").as_uri()),
    ):
        result = run(*args)
        assert result.returncode == 2 and "not a regular file" in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("meta", "message"),
    [("novalue", "expected KEY=VALUE"), ("=x", "expected KEY=VALUE"), ("name=x", "--name")],
)
def test_compile_rejects_bad_metadata_pairs(tmp_path: Path, meta: str, message: str) -> None:
    result = run("compile", tmp_path / "m.joblib", "-o", tmp_path / "m.msi", "--meta", meta)
    assert result.returncode == 2 and message in result.stderr


def test_compile_needs_an_output(tmp_path: Path) -> None:
    result = run("compile", tmp_path / "m.joblib")
    assert result.returncode == 2 and "-o" in result.stderr


# -- inspect -------------------------------------------------------------------------------------


def test_inspect_describes_the_image(image_file: Path) -> None:
    result = run("inspect", image_file)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    size = image_file.stat().st_size
    assert f"size:      {size:,} bytes" in out
    assert "checksum:  OK" in out
    assert f"kind:      {modelshelf.load(image_file).kind}" in out
    assert "input:     numeric, 4 features" in out
    assert "classes:   a, b, c" in out
    assert "name: iris" in out and "extra.team: search" in out
    assert "predict_proba" in out
    # stored as the transpose of scikit-learn's column-major coef_ (its memory order, kept)
    assert "model/coef.T" in out and "float64" in out and "4x3" in out and "96 B" in out


def test_inspect_json(image_file: Path) -> None:
    result = run("inspect", image_file, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["file"] == str(image_file)
    assert report["size"] == image_file.stat().st_size
    assert report["checksum"]["verdict"] == "OK"
    assert report["kind"] == modelshelf.load(image_file).kind
    assert report["input"] == {"type": "numeric", "n_features": 4, "feature_names": None}
    assert report["classes"] == ["a", "b", "c"]
    assert report["metadata"]["name"] == "iris"
    assert report["metadata"]["extra"] == {"team": "search"}
    arrays = {a["name"]: a for a in report["arrays"]}
    # scikit-learn's column-major coef_, stored as its row-major transpose (role "coef.T")
    assert arrays["model/coef.T"] == {
        "name": "model/coef.T",
        "dtype": "float64",
        "shape": [4, 3],
        "bytes": 96,
    }
    assert report["array_bytes"] == sum(a["bytes"] for a in report["arrays"])


def test_inspect_reports_a_checksum_mismatch(image_file: Path) -> None:
    data = bytearray(image_file.read_bytes())
    data[-1] ^= 0x01  # inside the last array: the structure stays valid
    image_file.write_bytes(bytes(data))
    result = run("inspect", image_file, "--json")
    assert result.returncode == 8  # an invalid image
    assert json.loads(result.stdout)["checksum"]["verdict"] == "MISMATCH"
    assert "checksum MISMATCH" in result.stderr
    result = run("inspect", image_file)
    assert result.returncode == 8 and "checksum:  MISMATCH" in result.stdout


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b[:40], "shorter than the 64-byte"),
        (lambda b: b"PK\x03\x04" + b[4:], "expected magic"),
        (lambda b: b[: len(b) - 8], "only"),
    ],
    ids=["truncated-header", "bad-magic", "truncated-data"],
)
def test_inspect_refuses_an_invalid_image(image_file: Path, mutate: Any, message: str) -> None:
    image_file.write_bytes(mutate(image_file.read_bytes()))
    result = run("inspect", image_file)
    assert result.returncode == 8  # ImageError.exit_status
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"modelshelf inspect: error: {image_file}: ")
    assert message in lines[0]


def test_inspect_refuses_an_unknown_model_kind(tmp_path: Path) -> None:
    path = tmp_path / "future.msi"
    manifest = {"model": {"kind": "quantum_forest"}, "metadata": {"name": "f"}}
    path.write_bytes(ImageBuilder().build(manifest))
    result = run("inspect", path)
    assert result.returncode == 8 and "unknown model kind 'quantum_forest'" in result.stderr


def test_inspect_a_missing_file(tmp_path: Path) -> None:
    result = run("inspect", tmp_path / "nope.msi")
    assert result.returncode == 2 and "No such file" in result.stderr


def test_inspect_a_tensor_bundle(tmp_path: Path) -> None:
    path = tmp_path / "w.msi"
    path.write_bytes(modelshelf.compile_tensors({"w": np.ones((2, 3), dtype=np.float32)}))
    result = run("inspect", path)
    assert result.returncode == 0, result.stderr
    assert "kind:      tensors" in result.stdout and "input:     none" in result.stdout
    assert "float32" in result.stdout and "2x3" in result.stdout and "classes" not in result.stdout


def test_inspect_a_tabular_image(tmp_path: Path) -> None:
    """A model fitted on pandas category columns says how many it recodes, and its format:
    1.5, a LightGBM forest's numpy_float32 (tabular input alone is 1.1)."""
    import lightgbm as lgb
    import pandas as pd

    rng = np.random.default_rng(0)
    X = pd.DataFrame(
        {"c": pd.Categorical(rng.choice([30, 10, 20], 200)), "x": rng.normal(size=200)}
    )
    model = lgb.LGBMRegressor(n_estimators=3, verbose=-1).fit(X, rng.normal(size=200))
    path = tmp_path / "t.msi"
    path.write_bytes(modelshelf.compile(model))
    result = run("inspect", path)
    assert result.returncode == 0, result.stderr
    assert "(format 1.5)" in result.stdout
    assert "input:     tabular, 2 features, 1 categorical" in result.stdout
    assert "features:  c, x" in result.stdout


# -- found by the last probes of the command line (each failed before its fix) -------------------


def test_compile_of_an_image_says_it_is_one(image_file: Path, tmp_path: Path) -> None:
    """Refused as 'does not start with an image's magic: corrupt' (it does start with it)."""
    renamed = tmp_path / "iris.bin"  # whatever its name: never unpickled
    renamed.write_bytes(image_file.read_bytes())
    for source in (image_file, renamed):
        result = run("compile", source, "-o", tmp_path / "again.msi")
        assert result.returncode == 2, result.stderr
        assert "is an image already: nothing to compile" in result.stderr
    assert not (tmp_path / "again.msi").exists()


def test_a_file_name_that_is_not_utf8(tmp_path: Path, pipeline: Any) -> None:
    """Refused 'manifest string ... is not valid Unicode' (the name went into the image), and
    printing the name ended --json with a traceback."""
    raw = os.fsencode(tmp_path) + b"/caf\xe9.joblib"
    joblib.dump(pipeline, raw.decode("utf-8", "surrogateescape"))
    out = tmp_path / "out.msi"
    for extra in ([], ["--json"]):
        result = subprocess.run(
            [*SCRIPT, *extra, "compile", raw, "-o", str(out)],
            capture_output=True, timeout=120, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert result.stderr == b""
    report = json.loads(result.stdout)
    assert report["source"].endswith("caf\udce9.joblib")  # escaped in JSON, read back
    assert modelshelf.load(out).metadata["name"] == "caf\ufffd"


def test_a_malformed_source_date_epoch_is_named(tmp_path: Path, pipeline: Any) -> None:
    """It was reported as the pickle failing to load (a library read it while unpickling)."""
    joblib.dump(pipeline, tmp_path / "p.joblib")
    result = subprocess.run(
        [*SCRIPT, "compile", str(tmp_path / "p.joblib"), "-o", str(tmp_path / "p.msi")],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "SOURCE_DATE_EPOCH": "yesterday"},
    )  # fmt: skip
    assert result.returncode == 2
    assert "SOURCE_DATE_EPOCH must be whole seconds" in result.stderr
    assert "'yesterday'" in result.stderr and "joblib" not in result.stderr


def test_a_pickle_of_another_version_warns_in_the_document_with_json(
    tmp_path: Path, pipeline: Any
) -> None:
    """scikit-learn's InconsistentVersionWarning went to stderr, which --json keeps empty."""
    import sklearn

    src = tmp_path / "old.joblib"
    joblib.dump(pipeline, src)
    ours = sklearn.__version__.encode()
    older = b"0" * len(ours)  # the same length: the pickle's framing holds
    src.write_bytes(src.read_bytes().replace(ours, older))
    result = run("--json", "compile", src, "-o", tmp_path / "old.msi")
    assert result.returncode == 0 and result.stderr == ""
    said = json.loads(result.stdout)["warnings"]
    # one per estimator unpickled (the pipeline and its two steps), each on one line
    assert len(said) == 3 and all(w.startswith("InconsistentVersionWarning: ") for w in said)
    result = run("compile", src, "-o", tmp_path / "old.msi")
    assert result.returncode == 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3
    assert all(line.startswith("modelshelf compile: warning: Inconsistent") for line in lines)


def test_an_abbreviated_option_is_refused() -> None:
    """'--js' was read as --json: a new option could change what a script's abbreviation means."""
    result = run("--js", "status")
    assert result.returncode == 2 and "unrecognized arguments: --js" in result.stderr


def test_json_refusals_of_a_model_carry_their_own_code(tmp_path: Path) -> None:
    """They carried 'internal' (a bug, per the protocol's codes)."""
    from modelshelf.errors import MissingDependencyError, UnsupportedModelError

    assert UnsupportedModelError.code == "unsupported_model"
    assert MissingDependencyError.code == "missing_dependency"
    joblib.dump({"not": "an estimator"}, tmp_path / "d.joblib")
    result = run("--json", "compile", tmp_path / "d.joblib", "-o", tmp_path / "d.msi")
    error = json.loads(result.stdout)["error"]
    assert (error["code"], error["exit_status"]) == ("unsupported_model", 1), error


def test_compile_output_writes_to_devices_and_through_links(tmp_path: Path, pipeline: Any) -> None:
    """-o replaced whatever the path was with a regular file: as root, -o /dev/null replaced
    the device, -o link.msi the link; -o - made a file named '-'. Shown on private copies
    (a device node made here, a link to /proc/self/fd/1)."""
    src = tmp_path / "p.joblib"
    joblib.dump(pipeline, src)
    null = tmp_path / "null"
    os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a copy of /dev/null (root)
    stdout = tmp_path / "stdout"
    stdout.symlink_to("/proc/self/fd/1")
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "target.msi").write_text("old")
    link = tmp_path / "link.msi"
    link.symlink_to(tmp_path / "real" / "target.msi")
    for out in (null, link):
        assert run("compile", src, "-o", out).returncode == 0
    assert stat.S_ISCHR(os.lstat(null).st_mode)
    assert link.is_symlink() and modelshelf.load(link).kind == "pipeline"
    result = subprocess.run(
        [*SCRIPT, "compile", str(src), "-o", str(stdout)], capture_output=True, timeout=120
    )
    assert result.returncode == 0 and stdout.is_symlink()
    assert result.stdout.startswith(b"\x89MSHELF")  # through the link, to this process's stdout
    result = subprocess.run(
        [*SCRIPT, "compile", str(src), "-o", "-"], capture_output=True, timeout=120, cwd=tmp_path
    )
    assert result.returncode == 0 and not (tmp_path / "-").exists()
    assert modelshelf.load(result.stdout).kind == "pipeline"
    assert b"-> stdout" in result.stderr  # the summary goes to stderr
    refused = run("--json", "compile", src, "-o", "-")
    assert refused.returncode == 2 and "stdout" in json.loads(refused.stdout)["error"]["message"]


def test_compile_output_never_follows_another_users_link(tmp_path: Path, pipeline: Any) -> None:
    """A second probe: writing through links let another user's link, planted in /tmp, aim
    root's image at a root-only file (it became the image, mode 0644)."""
    src = tmp_path / "p.joblib"
    joblib.dump(pipeline, src)
    secret = tmp_path / "secret"
    secret.write_text("root only")
    secret.chmod(0o600)
    planted = tmp_path / "model.msi"
    planted.symlink_to(secret)
    os.lchown(planted, 54321, 54321)  # another user's link (root may make one so)
    result = run("compile", src, "-o", planted)
    assert result.returncode == 4, result.stderr
    assert "symbolic link of uid 54321" in result.stderr
    assert secret.read_text() == "root only" and stat.S_IMODE(secret.stat().st_mode) == 0o600
