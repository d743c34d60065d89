"""Every model family's executor meets nonsense specs with ManifestError, never a crash.

Real images are compiled from the exactness cases, taken round-robin across the family modules
(so that each family's first cases come first), keeping each case that brings a kind not seen
before, until every registered kind is covered or ``FITS`` cases were fitted (the bound keeps
this module to seconds; MODELSHELF_FUZZ_SCALE raises it with the example counts). Their
manifests are then mutated node by node and the images rebuilt with valid checksums.
``modelshelf.load`` must build the executor or raise ManifestError: a KeyError, TypeError or
IndexError out of a ``from_spec`` is a hole. Kinds left out of the corpus are still reached,
less deeply, by the mutations that swap one component's kind for another.
"""

from __future__ import annotations

import itertools
import warnings
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import modelshelf
from modelshelf.image import Image
from modelshelf.runtime import registered_kinds
from tests.cases import CASES, Case

from . import _raw
from ._fuzz import SCALE, SETTINGS, consume, mutated_manifest

pytestmark = pytest.mark.slow  # compiles a few dozen fitted estimators first

FITS = 40 * SCALE


def _kinds(node: Any, out: set[str]) -> set[str]:
    if isinstance(node, dict):
        if isinstance(node.get("kind"), str):
            out.add(node["kind"])
        for value in node.values():
            _kinds(value, out)
    elif isinstance(node, list):
        for value in node:
            _kinds(value, out)
    return out


def _corpus() -> dict[str, Image]:
    """One compiled image per case that brings a kind not seen before."""
    wanted = set(registered_kinds())
    per_family: dict[str, list[Case]] = {}
    for case in CASES:  # grouped by the module that defines them
        per_family.setdefault(getattr(case.make, "__module__", ""), []).append(case)
    order = [c for row in itertools.zip_longest(*per_family.values()) for c in row if c is not None]
    corpus: dict[str, Image] = {}
    for case in order[:FITS]:
        if not wanted:
            break
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence warnings of tiny fits
            est, _ = case.fit()
        image = Image.open(modelshelf.compile(est))
        kinds = _kinds(image.manifest["model"], set())
        if kinds & wanted:
            corpus[case.id] = image
            wanted -= kinds
    return corpus


@pytest.fixture(scope="module")
def corpus() -> dict[str, Image]:
    return _corpus()


def test_corpus_covers_kinds(corpus: dict[str, Image]) -> None:
    covered = set().union(*(_kinds(i.manifest["model"], set()) for i in corpus.values()))
    assert covered <= set(registered_kinds())
    assert {"pipeline", "linear_classifier"} <= covered
    for image in corpus.values():  # every base is a working model
        assert consume(bytes(image.buffer)) == "ok"


@settings(SETTINGS, max_examples=600 * SCALE)
@given(data=st.data())
def test_family_spec_mutations(corpus: dict[str, Image], data: st.DataObject) -> None:
    image = corpus[data.draw(st.sampled_from(sorted(corpus)))]
    arrays = list(image.arrays.items())
    manifest = data.draw(mutated_manifest(image.manifest, [n for n, _ in arrays]))
    assert consume(_raw.assemble(arrays, manifest)) in ("open", "load", "ok")


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_weights_narrower_than_the_features_are_a_manifest_error(kind: str) -> None:
    """An image whose weight matrix takes fewer inputs than its manifest's features: the model
    checks X against the manifest, the product finds the weights disagree (ManifestError, not
    numpy's ValueError)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    from modelshelf.errors import ManifestError

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 5)), rng.integers(0, 2, 60)
    est = LogisticRegression() if kind == "linear" else MLPClassifier((4,), max_iter=50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        image = Image.open(modelshelf.compile(est.fit(X, y)))
    arrays = [
        (name, array[..., :-1] if array.ndim == 2 and array.shape[-1] == 5 else array)
        for name, array in image.arrays.items()
    ]
    if kind == "mlp":  # the first layer's (inputs, units): drop an input row
        arrays = [
            (name, array[:-1] if array.ndim == 2 and array.shape[0] == 5 else array)
            for name, array in image.arrays.items()
        ]
    model = modelshelf.load(_raw.assemble(arrays, image.manifest))
    with pytest.raises(ManifestError, match="weights take 4 inputs"):
        model.predict(X[:3])
