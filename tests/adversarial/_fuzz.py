"""Shared pieces of the hypothesis tests: the open/verify/load pass every mutant goes through
(loading with each kernel built: numpy, and compiled where the extension is), and a strategy
that mutates a manifest's JSON tree.

The examples are bounded so each test module runs in seconds; set MODELSHELF_FUZZ_SCALE=100
for a long hunt (every test's example count is multiplied by it).
"""

from __future__ import annotations

import copy
import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

import modelshelf
from modelshelf import _kernels
from modelshelf.errors import ImageError
from modelshelf.image import Image
from modelshelf.runtime import registered_kinds
from tests.kernels import using

#: the kernels a mutant is loaded with (tests/unit/test_kernels.py fails a required build)
BUILT_KERNELS = ("numpy", "compiled") if _kernels.BUILT is not None else ("numpy",)

SCALE = int(os.environ.get("MODELSHELF_FUZZ_SCALE", "1"))
SETTINGS = settings(
    max_examples=150 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def layout(image: Image) -> tuple[Any, ...]:
    """What opening an image read: its header's fields and every array's name, dtype, shape,
    strides, address, flags and the memory it views."""
    arrays = [
        (
            name, arr.dtype.str, arr.shape, arr.strides, arr.__array_interface__["data"][0],
            arr.flags.writeable, arr.flags.c_contiguous, arr.flags.f_contiguous,
            arr.flags.aligned, arr.flags.owndata, _memory(arr),
        )
        for name, arr in image.arrays.items()
    ]  # fmt: skip
    return (image.size, image.version, image.checksum, image._manifest_span, arrays)


def _memory(arr: Any) -> int:
    """The object whose memory ``arr`` views (through memoryviews of memoryviews)."""
    base = arr.base
    while isinstance(base, memoryview):
        base = base.obj
    return id(base)


def opened(data: bytes) -> Image | None:
    """``Image.open(data)`` with each kernel built: the compiled reader (image.c) must read
    exactly what the Python one reads, or refuse with exactly its error. The image, or None
    where it is refused (ImageError)."""
    outcomes: list[tuple[Any, ...]] = []
    image = None
    for kernel in BUILT_KERNELS:
        with using(kernel):
            try:
                image = Image.open(data)
            except ImageError as exc:
                outcomes.append((kernel, type(exc), str(exc)))
                image = None
            else:
                outcomes.append((kernel, layout(image)))
    assert all(o[1:] == outcomes[0][1:] for o in outcomes), outcomes
    return image


def consume(data: bytes) -> str:
    """Open, verify and load ``data``; return how far it got. ImageError is the only
    exception caught: anything else propagates and fails the calling test."""
    image = opened(data)
    if image is None:
        return "open"
    for arr in image.arrays.values():
        arr.tobytes()  # every view lies inside the buffer
    try:
        image.verify()
    except ImageError:
        verified = False
    else:
        verified = True
    try:
        for kernel in BUILT_KERNELS:
            with using(kernel):
                model = modelshelf.load(image)
            repr(model)
    except ImageError:
        return "load" if verified else "verify+load"
    return "ok" if verified else "verify"


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
# numbers that sit on the edges executors must check: counts, indices, sizes
EDGE_NUMBERS = [-1, 0, 1, 2, 3, 4, 5, 2**31, 2**63, 1e308, -0.0, 0.5]


def json_paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path (keys and indices) into a JSON tree, the root's empty path first."""
    out = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            out += json_paths(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += json_paths(value, (*path, i))
    return out


@st.composite
def mutated_manifest(draw: st.DrawFn, manifest: dict[str, Any], names: list[str]) -> Any:
    """``manifest`` with 1 to 3 nodes replaced (by any JSON, an edge number, another stored
    array's name or another registered kind) or deleted."""
    manifest = copy.deepcopy(manifest)
    for _ in range(draw(st.integers(1, 3))):
        paths = json_paths(manifest)[1:]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = manifest
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "kind", "array", "delete", "number"]))
        if action == "delete":
            del parent[path[-1]]
            continue
        if action == "kind":
            value: Any = draw(st.sampled_from([*registered_kinds(), "tensors"]))
        elif action == "array" and names:
            value = draw(st.sampled_from(names))
        elif action == "number":
            value = draw(st.sampled_from(EDGE_NUMBERS))
        else:
            value = draw(json_values)
        parent[path[-1]] = value
    return manifest
