"""Values inside an image's arrays that a loader took on trust: each one either made a client
(or the daemon, serving HTTP) allocate gigabytes, or failed every prediction with numpy's
exception instead of a ManifestError. Found by mutating the arrays of 40 real models (about
19,000 mutants, the CRC resealed) and predicting each under an address-space limit.

Every mutant runs in a child process limited to 3 GiB, so a regression fails there with a
MemoryError instead of exhausting the machine."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHILD = textwrap.dedent(
    """
    import copy, resource, sys, warnings
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
    import numpy as np
    from sklearn.datasets import load_diabetes, load_iris
    import modelshelf
    from modelshelf.errors import ManifestError
    from modelshelf.image import Image
    sys.path.insert(0, {root!r})
    from tests.adversarial import _raw
    warnings.simplefilter("ignore")
    X, y = load_diabetes(return_X_y=True) if {data!r} == "diabetes" else load_iris(return_X_y=True)
    est = {make}.fit(X, y)
    image = Image.open(modelshelf.compile(est))
    arrays = dict(image.arrays)
    manifest = copy.deepcopy(image.manifest)
    {mutate}
    try:
        model = modelshelf.load(_raw.assemble(list(arrays.items()), manifest))
        got = model.{method}(X[:20])
    except ManifestError as exc:
        print("REFUSED", exc)
    else:
        print("SERVED", "same" if np.array_equal(got, est.{method}(X[:20])) else "different")
    """
)

LGBM = "__import__('lightgbm').LGBMRegressor(linear_tree=True, n_estimators=5, verbose=-1)"
MUTANTS = [
    # one leaf claiming 2**31 terms: a prediction allocated 16 GiB (2**27 took the daemon to
    # 2.1 GB of RSS for one HTTP inference); only the first and last offsets were checked
    ("linear-offsets", LGBM, "diabetes", "arrays['model/linear_offsets'] = "
     "np.where(np.arange(len(arrays['model/linear_offsets'])) == 2, 2**31 - 1, "
     "arrays['model/linear_offsets'])", "predict", "REFUSED"),
    # a term reading column -1 read the last column (numpy's negative index), silently
    ("linear-feature", LGBM, "diabetes",
     "arrays['model/linear_feature'] = np.full_like(arrays['model/linear_feature'], -1)",
     "predict", "REFUSED"),
    # a leaf table of no rows and 2**40 columns, 0 bytes: predict asked for 480 TiB
    ("leaf-width", "__import__('sklearn.tree').tree.DecisionTreeRegressor(max_depth=3)",
     "diabetes", "arrays['model/leaf_values'] = np.empty((0, 2**40))", "predict", "REFUSED"),
    # training rows one column short of the input: numpy's matmul ValueError on every predict
    ("knn-width", "__import__('sklearn.neighbors').neighbors.KNeighborsClassifier()", "iris",
     "arrays['model/fit_X'] = np.ascontiguousarray(arrays['model/fit_X'][:, :-1])",
     "predict", "REFUSED"),
    ("svc-width", "__import__('sklearn.svm').svm.SVC()", "iris",
     "arrays['model/support_vectors'] = "
     "np.ascontiguousarray(arrays['model/support_vectors'][:, :-1])", "predict", "REFUSED"),
    # the same class indices as uint64: np.bincount's TypeError on every predict
    ("radius-y", "__import__('sklearn.neighbors').neighbors.RadiusNeighborsClassifier(3.0)",
     "iris", "arrays['model/y'] = arrays['model/y'].astype(np.uint64)", "predict_proba",
     "SERVED same"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "make", "data", "mutate", "method", "outcome"), MUTANTS, ids=[m[0] for m in MUTANTS]
)
def test_array_values_are_bounded_before_use(
    name: str, make: str, data: str, mutate: str, method: str, outcome: str
) -> None:
    code = CHILD.format(root=str(ROOT), make=make, data=data, mutate=mutate, method=method)
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith(outcome), proc.stdout


def test_a_nul_in_a_vectorizers_encoding_is_a_manifest_error() -> None:
    """``"utf-8\\x00"`` made the encoding lookup raise a bare ValueError at load (and the
    daemon's metadata endpoint answer 500)."""
    import copy

    from sklearn.feature_extraction.text import CountVectorizer

    import modelshelf
    from modelshelf.errors import ManifestError
    from modelshelf.image import Image

    from . import _raw

    image = Image.open(
        modelshelf.compile(CountVectorizer().fit(["one document", "another document"]))
    )
    manifest = copy.deepcopy(image.manifest)
    manifest["model"]["params"]["encoding"] = "utf-8\x00"
    with pytest.raises(ManifestError, match="encoding"):
        modelshelf.load(_raw.assemble(list(image.arrays.items()), manifest))
