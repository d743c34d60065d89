"""Every hostile file in tests/adversarial/files raises exactly its ImageError subclass, at the
stage its case names, from a path, from bytes and through ``modelshelf.load`` (with each
kernel: numpy and compiled)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import modelshelf
from modelshelf.image import Image

from . import _raw
from .generate import CASES, FILES, SUFFIX, Hostile, nested_pipelines

_IDS = [case.name for case in CASES]


def test_files_are_what_the_generator_writes() -> None:
    """The committed files are current: regenerate with ``python -m tests.adversarial.generate``."""
    on_disk = {p.stem for p in FILES.glob(f"*{SUFFIX}")}
    assert on_disk == set(_IDS)
    assert len(set(_IDS)) == len(_IDS), "two cases share a name"
    stale = [c.name for c in CASES if (FILES / f"{c.name}{SUFFIX}").read_bytes() != c.make()]
    assert not stale, f"stale hostile files (regenerate them): {stale}"
    assert sum(p.stat().st_size for p in FILES.glob(f"*{SUFFIX}")) < 256 * 1024


def _raises_exactly(
    error: type[Exception], fn: Callable[..., object], *args: object, **kwargs: object
) -> Exception:
    with pytest.raises(modelshelf.ImageError) as info:
        fn(*args, **kwargs)
    assert type(info.value) is error, f"expected {error.__name__}, got {info.type.__name__}"
    assert str(info.value), "an error must say what it expected and found"
    return info.value


@pytest.mark.parametrize("case", CASES, ids=_IDS)
def test_hostile_file(case: Hostile, kernel: str) -> None:
    path = FILES / f"{case.name}{SUFFIX}"
    data = path.read_bytes()
    if case.stage == "open":
        _raises_exactly(case.error, Image.open, path)
        _raises_exactly(case.error, Image.open, data)
        _raises_exactly(case.error, Image.open, bytearray(data))
        _raises_exactly(case.error, modelshelf.load, path)
        return
    image = Image.open(path)  # the structure is valid
    if case.stage == "verify":
        _raises_exactly(case.error, image.verify)
        _raises_exactly(case.error, Image.open, data, verify=True)
        _raises_exactly(case.error, modelshelf.load, path, verify=True)
        return
    assert case.stage == "load", case.stage
    image.verify()  # so is the checksum: only the model spec is wrong
    _raises_exactly(case.error, modelshelf.load, path, verify=True)
    _raises_exactly(case.error, modelshelf.load, data)


def test_base_image_is_a_working_model() -> None:
    """Each ``load`` case breaks one thing in this model; it must itself load and predict."""
    arrays, _ = _raw.base_model()
    a = dict(arrays)
    model = modelshelf.load(_raw.base_image(), verify=True)
    X = np.array([[5.0, 3.5, 1.4, 0.2], [6.5, 3.0, 5.5, 2.0]])
    scores = ((X - a["model/0/center"]) / a["model/0/scale"]) @ a["model/1/coef"].T
    scores += a["model/1/intercept"]
    np.testing.assert_allclose(model.decision_function(X), scores, rtol=1e-12)
    np.testing.assert_array_equal(model.predict(X), scores.argmax(axis=1))


def test_nested_components_load_up_to_the_depth_limit() -> None:
    """19 wrapping pipelines reach depth 64 and load; a 20th is refused before building."""
    X = np.array([[5.0, 3.5, 1.4, 0.2]])
    expected = modelshelf.load(_raw.base_image()).predict_proba(X)
    arrays, _ = _raw.base_model()
    deepest = _manifest_of(nested_pipelines(19))
    np.testing.assert_array_equal(
        modelshelf.load(_raw.assemble(arrays, deepest)).predict_proba(X), expected
    )
    with pytest.raises(modelshelf.ManifestError, match="deeper than 64"):
        modelshelf.load(_raw.assemble(arrays, _manifest_of(nested_pipelines(20))))


def _manifest_of(edit: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    _, manifest = _raw.base_model()
    edit(manifest)
    return manifest
