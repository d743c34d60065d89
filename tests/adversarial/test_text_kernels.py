"""Text vectorizer images with hostile string tables, through both kernels (numpy and compiled).

Loading checks the vocabulary's runs in O(number of runs) (docs/format.md, "Text vocabulary");
the terms' bytes and columns are read when documents are counted, where every column and
offset must be checked. Here real images (word, n-gram and char_wb vocabularies with odd
bytes, an empty term, surrogates and NULs in the documents) get a few values of one table
array overwritten with edge values, are resealed, and count documents on both kernels: each
must return or raise ModelshelfError, never an IndexError, a crash or a bad read (the sanitizer
build, scripts/sanitize.sh, runs this module). Where the mutation keeps the terms sorted
(columns, idf), both kernels must also agree to the last bit, or both raise the same error.
(Unsorted terms or reshaped runs may make the two searches find different terms; neither reads
outside the blob.) Manifest mutations of the same images count documents too.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import modelshelf
from modelshelf.errors import ModelshelfError
from modelshelf.image import Image
from tests.cases import text
from tests.kernels import KERNELS, require, same_bits, using

from . import _raw
from ._fuzz import SCALE, SETTINGS, consume, mutated_manifest

BASES = ("text-count-word", "text-tfidf-char-wb", "text-count-word-ngrams-2-3", "text-count-char")
# Arrays whose mutation keeps the search's answers: the kernels must then agree exactly.
AGREEING_ROLES = {"columns", "idf"}
DOCS = [
    "",
    "the café naïve a co-op",
    "日本語 🙂 \x00 \x00\x00 e\u0301",
    "lone \ud800 surrogate \udfff",
    "Hello hello HeLLo well-known",
]


def _fit() -> dict[str, Image]:
    cases = {c.id: c for c in text.CASES}
    out = {}
    for name in BASES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est, _ = cases[name].fit()
        out[name] = Image.open(modelshelf.compile(est))
    return out


@pytest.fixture(scope="module")
def images() -> dict[str, Image]:
    for kernel in KERNELS:
        require(kernel)
    return _fit()


def _docs() -> list[str]:
    return DOCS + text.corpus()[0][:20]


def _outcome(image: bytes, kernel: str) -> Any:
    """``transform``'s CSR, or the name of the typed error that stopped it."""
    try:
        with using(kernel):
            model = modelshelf.load(image)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a mutated idf may overflow
            return model.transform(_docs())  # type: ignore[attr-defined]
    except ModelshelfError as exc:
        return type(exc).__name__


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return same_bits(a, b)


def _edge_values(draw: st.DrawFn, arr: np.ndarray) -> Any:
    n = max(len(arr), 1)
    if arr.dtype.kind == "f":
        return draw(st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -0.0, -1.0, 1e300]))
    info = np.iinfo(arr.dtype)
    edges = [-2, -1, 0, 1, n - 1, n, n + 1, 2 * n, info.max, info.min, -n, 127, 128, 255]
    return draw(
        st.sampled_from([e for e in edges if info.min <= e <= info.max])
        | st.integers(max(info.min, -2 * n), min(info.max, 2 * n))
    )


def _tables(node: Any) -> dict[str, str]:
    """role -> array name of every array in a manifest's model tree (vectorizer, children)."""
    refs: dict[str, str] = {}
    if isinstance(node, dict):
        refs.update(node.get("arrays", {}) if isinstance(node.get("arrays"), dict) else {})
        for value in node.values():
            refs.update(_tables(value))
    return refs


@st.composite
def _mutant(draw: st.DrawFn, images: dict[str, Image]) -> tuple[str, bytes, str]:
    name = draw(st.sampled_from(BASES))
    image = images[name]
    refs = _tables(image.manifest["model"])
    role = draw(st.sampled_from(sorted(refs)))
    arrays = {n: np.array(a) for n, a in image.arrays.items()}  # writable copies
    target = arrays[refs[role]].reshape(-1)
    if len(target):
        for _ in range(draw(st.integers(1, 4))):
            at = draw(st.integers(0, len(target) - 1))
            target[at] = _edge_values(draw, target)
    return name, _raw.assemble(list(arrays.items()), image.manifest), role


def test_bases_have_string_tables(images: dict[str, Image]) -> None:
    for name, image in images.items():
        assert {"terms", "runs", "columns"} <= set(_tables(image.manifest["model"])), name
        resealed = _raw.assemble(list(image.arrays.items()), image.manifest)
        outcomes = [_outcome(resealed, kernel) for kernel in KERNELS]
        assert not isinstance(outcomes[0], str) and _same(*outcomes), name


@settings(SETTINGS, max_examples=300 * SCALE)
@given(data=st.data())
def test_hostile_string_tables(images: dict[str, Image], data: Any) -> None:
    name, mutant, role = data.draw(_mutant(images))
    outcomes = [_outcome(mutant, kernel) for kernel in KERNELS]
    if role in AGREEING_ROLES:
        assert _same(*outcomes), f"{name}: {role} mutated, kernels disagree: {outcomes}"


@settings(SETTINGS, max_examples=100 * SCALE)
@given(data=st.data())
def test_manifest_mutations_count(images: dict[str, Image], data: Any) -> None:
    name = data.draw(st.sampled_from(BASES))
    image = images[name]
    arrays = list(image.arrays.items())
    manifest = data.draw(mutated_manifest(image.manifest, [n for n, _ in arrays]))
    mutant = _raw.assemble(arrays, manifest)
    if consume(mutant) != "ok":
        return
    for kernel in KERNELS:
        _outcome(mutant, kernel)  # only typed errors escape


@pytest.mark.parametrize("flags", [2**31, 2**40, -1, 128])
def test_token_flags_outside_the_pattern_flags_are_refused(
    images: dict[str, Image], flags: int
) -> None:
    """Found by the test above: 2**31 passed the check (``~`` of a RegexFlag keeps only the
    other defined flags) and reached ``re.compile`` as an OverflowError."""
    image = images["text-count-word"]
    manifest = copy.deepcopy(image.manifest)
    analyzer = _find_params_with(manifest, "token_flags")
    analyzer["token_flags"] = flags
    mutant = _raw.assemble(list(image.arrays.items()), manifest)
    for kernel in KERNELS:
        assert _outcome(mutant, kernel) == "ManifestError", kernel


def _find_params_with(node: Any, key: str) -> dict[str, Any]:
    """The first ``params`` object in a manifest that holds ``key``."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if key in item.get("params", {}):
                return item["params"]  # type: ignore[no-any-return]
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    raise AssertionError(f"no params with {key!r}")
