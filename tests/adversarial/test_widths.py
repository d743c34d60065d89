"""Parameters in a manifest that would make a client allocate gigabytes, or fail with an
untyped exception, are refused with a ManifestError (at load, or at the call that would need
them), never a MemoryError, the kernel's OOM killer or a stray KeyError. Found by sweeping every
integer, float and string parameter of every case of the exactness matrix (2**31 - 1, 2**40,
1e308, 5e-324, "" and the like) under a 6 GiB address-space limit, and by the text mutation test
at MODELSHELF_FUZZ_SCALE=10 (which, unlimited, had the test process killed at 24 GB).

The width checks run in a child process whose address space is limited to 3 GiB: a regression
fails there with MemoryError instead of exhausting the machine."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import modelshelf
from modelshelf.errors import UnsupportedModelError

ROOT = Path(__file__).resolve().parents[2]
CHILD = textwrap.dedent(
    """
    import copy, resource, sys, warnings
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
    import numpy as np
    import modelshelf
    from modelshelf.errors import ManifestError
    from modelshelf.image import Image
    sys.path.insert(0, {root!r})
    from tests.adversarial import _raw
    from tests.cases import CASES
    warnings.simplefilter("ignore")
    case = next(c for c in CASES if c.id == {case!r})
    est, X = case.fit()
    image = Image.open(modelshelf.compile(est))
    manifest = copy.deepcopy(image.manifest)
    node = manifest
    for key in {path!r}[:-1]:
        node = node[key]
    node[{path!r}[-1]] = {value!r}
    try:
        model = modelshelf.load(_raw.assemble(list(image.arrays.items()), manifest))
        getattr(model, {method!r})(X[:3])
    except ManifestError as exc:
        print("REFUSED", exc)
    else:
        print("SERVED")
    """
)

WIDE = [
    # a column transformer as wide as an int32 allows: its column masks were 2 GiB each at load
    ("compose-columns-random_cat", ("model", "params", "n_features"), 2**31 - 1, "transform"),
    # a hashing vectorizer that wide before a step needing dense rows: 16 GiB for one row
    (
        "text-pipe-hashing-gbm",
        ("model", "params", "steps", 0, "params", "n_features"),
        2**31 - 1,
        "predict",
    ),
    # n-grams up to 2**31 tokens or characters: every n-gram of every length of a document
    ("text-count-char", ("model", "params", "ngram_range", 1), 2**31 - 1, "transform"),
    ("text-count-word", ("model", "params", "ngram_range", 1), 2**20, "transform"),
]


@pytest.mark.parametrize(("case", "path", "value", "method"), WIDE, ids=[w[0] for w in WIDE])
def test_widths_that_would_exhaust_the_client_are_refused(
    case: str, path: tuple[object, ...], value: int, method: str
) -> None:
    code = CHILD.format(root=str(ROOT), case=case, path=path, value=value, method=method)
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("REFUSED"), proc.stdout


def test_the_converter_refuses_ngrams_longer_than_the_runtime_takes() -> None:
    from sklearn.feature_extraction.text import CountVectorizer

    est = CountVectorizer(analyzer="char", ngram_range=(1, 65)).fit(["a tiny corpus", "of two"])
    with pytest.raises(UnsupportedModelError, match="ngram_range"):
        modelshelf.compile(est)
    modelshelf.compile(CountVectorizer(analyzer="char", ngram_range=(1, 64)).fit(["ok", "yes"]))


def test_an_empty_norm_is_checked_not_taken_for_none() -> None:
    """Found by the same sweep over string parameters: ``"norm": ""`` passed as "no norm" (an
    empty string is falsy) and reached the compiled weighing as a KeyError."""
    import copy

    from sklearn.feature_extraction.text import TfidfVectorizer

    from modelshelf.errors import ManifestError
    from modelshelf.image import Image

    from . import _raw

    est = TfidfVectorizer().fit(["one document", "and another document"])
    image = Image.open(modelshelf.compile(est))
    manifest = copy.deepcopy(image.manifest)
    manifest["model"]["params"]["tfidf"]["params"]["norm"] = ""
    with pytest.raises(ManifestError, match="norm"):
        modelshelf.load(_raw.assemble(list(image.arrays.items()), manifest))


def test_a_zero_divergence_divides_as_numpy_does() -> None:
    """Found by the sweep over float parameters: an NMF whose beta makes the divergence at
    initialisation 0 divided a Python float by it (ZeroDivisionError); scikit-learn divides
    numpy floats (inf or nan, and numpy's warning) and carries on: so does the runtime."""
    import warnings

    import numpy as np
    from sklearn.decomposition import NMF

    X = np.abs(np.random.default_rng(0).normal(size=(30, 6)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = NMF(2, solver="mu", beta_loss=5e-324, max_iter=50, init="random", random_state=0)
        est.fit(X)
        expected = est.transform(X[:5])
        actual = modelshelf.load(modelshelf.compile(est)).transform(X[:5])
    np.testing.assert_array_equal(actual, expected)


def test_a_voting_regressor_whose_estimators_disagree_in_shape_is_refused() -> None:
    """Found by the sweep over bool parameters: a DummyRegressor child told not to ravel gave
    (n, 1) beside the others' (n,), and numpy's ValueError escaped; now a ManifestError."""
    import copy

    from modelshelf.errors import ManifestError
    from modelshelf.image import Image
    from tests.cases import CASES

    from . import _raw

    case = next(c for c in CASES if c.id == "ensemble-nested-voting-regressor")
    est, X = case.fit()
    image = Image.open(modelshelf.compile(est))
    manifest = copy.deepcopy(image.manifest)
    dummy = next(
        e for e in manifest["model"]["params"]["estimators"] if "ravel" in e.get("params", {})
    )
    dummy["params"]["ravel"] = False
    model = modelshelf.load(_raw.assemble(list(image.arrays.items()), manifest))
    with pytest.raises(ManifestError, match="must share one shape"):
        model.predict(X[:4])


def test_a_multi_output_regressor_whose_estimators_disagree_in_shape_is_refused() -> None:
    """The same sweep, lists extended: a tree child given one more output group predicts (n, 2)
    beside its siblings' (n,); numpy's ValueError escaped, now a ManifestError."""
    import copy

    from modelshelf.errors import ManifestError
    from modelshelf.image import Image
    from tests.cases import CASES

    from . import _raw

    case = next(c for c in CASES if c.id == "multioutput-regressor-tree")
    est, X = case.fit()
    image = Image.open(modelshelf.compile(est))
    manifest = copy.deepcopy(image.manifest)
    groups = manifest["model"]["params"]["estimators"][0]["params"]["groups"]
    groups.append(groups[-1])  # an empty second group: a second output column
    model = modelshelf.load(_raw.assemble(list(image.arrays.items()), manifest))
    with pytest.raises(ManifestError, match="must share one shape"):
        model.predict(X[:4])
