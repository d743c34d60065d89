"""Hostile images: each breaks one rule of docs/format.md, and names the error it must raise.

``python -m tests.adversarial.generate`` rewrites ``tests/adversarial/files/`` (small files, kept
in the repository so that other readers of the format can run them too); test_hostile.py checks
that the files are exactly what this module generates and that each raises its error.

A case's ``stage`` says where the fault must surface: ``open`` (``Image.open``: structure),
``verify`` (``Image.verify``: the CRC-32; the structure is intact) or ``load``
(``modelshelf.load``: the image and its checksum are valid, the model spec is not).
"""

from __future__ import annotations

import pathlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelshelf.errors import (
    ArrayBoundsError,
    ArrayTableError,
    BadMagicError,
    ChecksumError,
    HeaderError,
    ImageError,
    ManifestError,
    TruncatedImageError,
    UnsupportedVersionError,
)

from . import _raw
from ._raw import assemble, base_image, base_model, set_entry, set_header

FILES = pathlib.Path(__file__).parent / "files"
SUFFIX = ".msimg"


@dataclass(frozen=True)
class Hostile:
    name: str
    make: Callable[[], bytes]
    error: type[ImageError]
    stage: str = "open"  # open | verify | load


def _manifest(edit: Callable[[dict[str, Any]], object]) -> bytes:
    """The base model with its manifest edited by ``edit`` (which changes it in place)."""
    arrays, manifest = base_model()
    edit(manifest)
    return assemble(arrays, manifest)


def _with_array(name: str, arr: np.ndarray, edit: Callable[[dict[str, Any]], object]) -> bytes:
    """The base model with one more array stored and its manifest edited by ``edit``."""
    arrays, manifest = base_model()
    edit(manifest)
    return assemble([*arrays, (name, arr)], manifest)


def _raw_manifest(text: bytes) -> bytes:
    arrays, _ = base_model()
    return assemble(arrays, text)


def _with_manifest_value(value: str) -> bytes:
    """The base manifest with ``"x": <value>`` spliced in as raw JSON text."""
    arrays, manifest = base_model()
    text = _raw.manifest_bytes(manifest)
    return assemble(arrays, text[:-1] + b',"x":' + value.encode() + b"}")


def _steps(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = manifest["model"]["params"]["steps"]
    return steps


def _flip(image: bytes, at: int, bit: int = 0) -> bytes:
    out = bytearray(image)
    out[at] ^= 1 << bit
    return bytes(out)


def _entry_offset(i: int) -> int:
    return _raw.entry(base_image(), i)["data_offset"]


def _header_only_self_consistent() -> bytes:
    return set_header(
        base_image()[:64],
        array_count=0,
        strings_offset=64,
        manifest_offset=64,
        manifest_length=0,
        strings_length=0,
        image_size=64,
    )


def _table_past_end() -> bytes:
    # Self-consistent offsets for 1000 entries; only the image is too small to hold them.
    image = base_image()
    h = _raw.header(image)
    shift = 995 * _raw.ENTRY_SIZE
    return set_header(
        image,
        array_count=1000,
        strings_offset=h["strings_offset"] + shift,
        manifest_offset=h["manifest_offset"] + shift,
    )


def _two_arrays(names: tuple[bytes, bytes]) -> bytes:
    manifest = {"model": {"kind": "tensors"}, "metadata": {"name": "two"}}
    return assemble([(names[0], np.zeros(3)), (names[1], np.ones(3))], manifest)


def _pickle() -> bytes:
    # protocol-4 pickle of {"a": 1}, as a joblib file would start: rejected by its magic, never
    # unpickled.
    return bytes.fromhex("80049509000000000000007d948c0161944b01732e") + bytes(64)


def _safetensors() -> bytes:
    header = b'{"w":{"dtype":"F64","shape":[2],"data_offsets":[0,16]}}'
    return len(header).to_bytes(8, "little") + header + bytes(16)


def nested_pipelines(n: int) -> Callable[[dict[str, Any]], object]:
    """Wrap the model in ``n`` one-step pipelines: valid JSON, but building it recursed past
    Python's stack limit (RecursionError) before MAX_MANIFEST_DEPTH bounded it."""

    def edit(manifest: dict[str, Any]) -> None:
        for _ in range(n):
            manifest["model"] = {"kind": "pipeline", "params": {"steps": [manifest["model"]]}}

    return edit


def _deep(n: int) -> Callable[[dict[str, Any]], object]:
    """Put ``n`` nested lists in metadata.extra: the innermost is at depth 3 + n."""

    def edit(manifest: dict[str, Any]) -> None:
        node: Any = 0
        for _ in range(n):
            node = [node]
        manifest["metadata"]["extra"] = {"deep": node}

    return edit


# A base model with tabular input (format 1.1): a numbers, a strings and a codes table.
TABULAR_ARRAYS: list[tuple[str, np.ndarray]] = [
    ("input/categories/0/values", np.array([10.0, 20.0, 30.0])),
    ("input/categories/0/codes", np.array([1, 2, 0], dtype=np.int32)),
    ("input/categories/1/terms", np.frombuffer(b"abc", dtype=np.uint8)),
    ("input/categories/1/runs", np.array([[1, 0, 3]], dtype=np.int64)),
    ("input/categories/1/columns", np.array([1, 0, 2], dtype=np.int32)),
]


def tabular_model() -> tuple[list[tuple[str, np.ndarray]], dict[str, Any]]:
    """The base model reading a DataFrame's columns 0-2 as categories (test_hostile checks
    that it loads and predicts, so that each ``tabular_*`` case breaks one thing)."""
    arrays, manifest = base_model()
    numbers = {"values": "input/categories/0/values", "codes": "input/categories/0/codes"}
    strings = {role: f"input/categories/1/{role}" for role in ("terms", "runs", "columns")}
    manifest["input"].update(
        type="tabular",
        categories=[
            {"column": 0, "table": "numbers", "unknown": "missing", "arrays": numbers},
            {"column": 1, "table": "strings", "unknown": "error", "arrays": strings},
            {"column": 2, "table": "codes"},
        ],
    )
    return [*arrays, *TABULAR_ARRAYS], manifest


def _tabular(
    edit: Callable[[list[dict[str, Any]], dict[str, Any]], object],
    replace: tuple[str, np.ndarray] | None = None,
) -> bytes:
    """The tabular model with its tables edited by ``edit(categories, input)`` in place, and
    optionally one of its arrays replaced."""
    arrays, manifest = tabular_model()
    edit(manifest["input"]["categories"], manifest["input"])
    if replace is not None:
        arrays = [replace if name == replace[0] else (name, a) for name, a in arrays]
    return assemble(arrays, manifest)


def _load(name: str, make: Callable[[], bytes]) -> Hostile:
    return Hostile(name, make, ManifestError, "load")


TABULAR_CASES: list[Hostile] = [
    _load("tabular_categories_missing", lambda: _tabular(lambda c, i: i.pop("categories"))),
    _load("tabular_categories_empty", lambda: _tabular(lambda c, i: c.clear())),
    _load("tabular_categories_not_list", lambda: _tabular(lambda c, i: i.update(categories={}))),
    _load("tabular_n_features_null", lambda: _tabular(lambda c, i: i.update(n_features=None))),
    _load("categories_without_tabular", lambda: _tabular(lambda c, i: i.update(type="numeric"))),
    _load("tabular_entry_not_object", lambda: _tabular(lambda c, i: c.insert(0, "numbers"))),
    _load("tabular_arrays_not_object", lambda: _tabular(lambda c, i: c[0].update(arrays=[]))),
    _load("tabular_column_past_end", lambda: _tabular(lambda c, i: c[2].update(column=4))),
    _load("tabular_column_negative", lambda: _tabular(lambda c, i: c[0].update(column=-1))),
    _load("tabular_column_not_int", lambda: _tabular(lambda c, i: c[0].update(column="0"))),
    _load("tabular_columns_repeat", lambda: _tabular(lambda c, i: c[1].update(column=0))),
    _load("tabular_table_unknown", lambda: _tabular(lambda c, i: c[0].update(table="dates"))),
    _load("tabular_unknown_policy", lambda: _tabular(lambda c, i: c[1].update(unknown="skip"))),
    _load("tabular_values_missing", lambda: _tabular(lambda c, i: c[0]["arrays"].pop("values"))),
    _load(
        "tabular_values_not_float",
        lambda: _tabular(lambda c, i: None, ("input/categories/0/values", np.array([10, 20, 30]))),
    ),
    _load(
        "tabular_codes_shorter",
        lambda: _tabular(
            lambda c, i: None, ("input/categories/0/codes", np.array([1, 2], dtype=np.int32))
        ),
    ),
    _load(
        "tabular_runs_past_terms",
        lambda: _tabular(
            lambda c, i: None, ("input/categories/1/runs", np.array([[1, 0, 4]], dtype=np.int64))
        ),
    ),
]

CASES: list[Hostile] = [
    # -- size and header --------------------------------------------------------------------
    Hostile("empty", lambda: b"", TruncatedImageError),
    Hostile("one_byte", lambda: b"\x89", TruncatedImageError),
    Hostile("header_only", lambda: base_image()[:64], TruncatedImageError),
    Hostile("header_only_self_consistent", _header_only_self_consistent, ManifestError),
    Hostile("truncated_in_array", lambda: base_image()[:-5], TruncatedImageError),
    Hostile("wrong_magic", lambda: set_header(base_image(), magic=b"\x89MSHELX\n"), BadMagicError),
    Hostile("pickle_file", _pickle, BadMagicError),
    Hostile("safetensors_file", _safetensors, BadMagicError),
    Hostile("version_2", lambda: set_header(base_image(), major=2), UnsupportedVersionError),
    Hostile("version_0", lambda: set_header(base_image(), major=0), UnsupportedVersionError),
    Hostile("unknown_flag", lambda: set_header(base_image(), flags=1), UnsupportedVersionError),
    Hostile("high_flag", lambda: set_header(base_image(), flags=1 << 31), UnsupportedVersionError),
    Hostile(
        "size_larger_than_buffer",
        lambda: set_header(base_image(), image_size=len(base_image()) + 64),
        TruncatedImageError,
    ),
    Hostile("size_smaller_than_buffer", lambda: base_image() + bytes(64), HeaderError),
    Hostile(
        "trailing_bytes_declared",  # image_size covers 64 bytes past the last array
        lambda: set_header(base_image() + bytes(64), image_size=len(base_image()) + 64),
        HeaderError,
    ),
    Hostile("size_over_max", lambda: set_header(base_image(), image_size=1 << 41), HeaderError),
    Hostile(
        "size_2_64_minus_1", lambda: set_header(base_image(), image_size=2**64 - 1), HeaderError
    ),
    Hostile(
        "table_count_huge", lambda: set_header(base_image(), array_count=2**32 - 1), HeaderError
    ),
    Hostile("table_past_end", _table_past_end, HeaderError),
    Hostile("table_offset_wrong", lambda: set_header(base_image(), table_offset=0), HeaderError),
    Hostile(
        "strings_offset_wrong", lambda: set_header(base_image(), strings_offset=63), HeaderError
    ),
    Hostile(
        "manifest_offset_wrong",
        lambda: set_header(
            base_image(), manifest_offset=_raw.header(base_image())["manifest_offset"] + 1
        ),
        HeaderError,
    ),
    Hostile(
        "manifest_length_over_max",
        lambda: set_header(base_image(), manifest_length=2**32 - 1),
        HeaderError,
    ),
    Hostile(
        "manifest_length_past_end",
        lambda: set_header(base_image(), manifest_length=len(base_image())),
        HeaderError,
    ),
    Hostile(
        "strings_length_huge",
        lambda: set_header(base_image(), strings_length=2**32 - 1),
        HeaderError,
    ),
    # -- manifest ---------------------------------------------------------------------------
    Hostile(
        "manifest_not_utf8",
        lambda: _raw.replace_manifest_text(base_image(), b"hostile", b"host\xffle"),
        ManifestError,
    ),
    Hostile(
        "manifest_not_json",
        lambda: _raw.replace_manifest_text(base_image(), b'{"input"', b'["input"'),
        ManifestError,
    ),
    Hostile("manifest_empty", lambda: _raw_manifest(b""), ManifestError),
    Hostile("manifest_json_array", lambda: _raw_manifest(b"[]"), ManifestError),
    Hostile("manifest_json_string", lambda: _raw_manifest(b'"model"'), ManifestError),
    Hostile("manifest_nan", lambda: _with_manifest_value("NaN"), ManifestError),
    Hostile("manifest_infinity", lambda: _with_manifest_value("-Infinity"), ManifestError),
    Hostile("manifest_number_overflow", lambda: _with_manifest_value("1e999"), ManifestError),
    Hostile("manifest_int_5000_digits", lambda: _with_manifest_value("9" * 5000), ManifestError),
    Hostile("manifest_lone_surrogate", lambda: _with_manifest_value('"\\ud800"'), ManifestError),
    Hostile("manifest_duplicate_key", lambda: _with_manifest_value('1,"x":2'), ManifestError),
    Hostile(
        "manifest_nested_10000", lambda: _raw_manifest(b"[" * 10000 + b"]" * 10000), ManifestError
    ),
    Hostile("manifest_depth_over_limit", lambda: _manifest(_deep(62)), ManifestError),
    Hostile(
        "manifest_300nested_pipelines", lambda: _manifest(nested_pipelines(300)), ManifestError
    ),
    Hostile("manifest_no_model", lambda: _manifest(lambda m: m.pop("model")), ManifestError),
    Hostile(
        "manifest_model_not_object", lambda: _manifest(lambda m: m.update(model=[])), ManifestError
    ),
    Hostile(
        "manifest_kind_not_string",
        lambda: _manifest(lambda m: m["model"].update(kind=1)),
        ManifestError,
    ),
    Hostile("manifest_no_metadata", lambda: _manifest(lambda m: m.pop("metadata")), ManifestError),
    Hostile(
        "manifest_input_not_object", lambda: _manifest(lambda m: m.update(input=4)), ManifestError
    ),
    # -- array table ------------------------------------------------------------------------
    Hostile(
        "array_out_of_bounds",
        lambda: set_entry(base_image(), 4, data_offset=len(base_image()) + 64),
        ArrayBoundsError,
    ),
    Hostile(
        "arrays_overlapping",
        lambda: set_entry(base_image(), 1, data_offset=_entry_offset(0)),
        ArrayBoundsError,
    ),
    Hostile(
        "array_over_manifest",
        lambda: set_entry(
            base_image(), 0, data_offset=_raw.manifest_span(base_image())[0] // 64 * 64
        ),
        ArrayBoundsError,
    ),
    Hostile(
        "array_misaligned",
        lambda: set_entry(base_image(), 0, data_offset=_entry_offset(0) + 8),
        ArrayBoundsError,
    ),
    Hostile(
        "array_offset_length_overflow",
        lambda: set_entry(base_image(), 4, data_offset=2**64 - 64),
        ArrayBoundsError,
    ),
    Hostile(
        "shape_product_overflow",
        lambda: set_entry(base_image(), 0, ndim=3, shape0=2**40, shape1=2**40, shape2=2**40),
        ArrayTableError,
    ),
    Hostile(
        "shape_product_wraps_to_zero",  # 2**32 * 2**32 * 8 is 0 modulo 2**64
        lambda: set_entry(base_image(), 0, ndim=2, shape0=2**32, shape1=2**32, data_length=0),
        ArrayTableError,
    ),
    Hostile(
        "shape_huge_but_length_matching",
        lambda: set_entry(base_image(), 4, ndim=2, shape0=2**40, shape1=2**20, data_length=2**63),
        ArrayBoundsError,
    ),
    Hostile(
        "dim_over_max", lambda: set_entry(base_image(), 0, ndim=2, shape1=2**41), ArrayTableError
    ),
    Hostile(
        "zero_size_dim_2_64_minus_1",  # no bytes, yet no numpy could reshape to it
        lambda: set_entry(base_image(), 0, ndim=2, shape0=0, shape1=2**64 - 1, data_length=0),
        ArrayTableError,
    ),
    Hostile("shape_length_mismatch", lambda: set_entry(base_image(), 0, shape0=5), ArrayTableError),
    Hostile("ndim_9", lambda: set_entry(base_image(), 0, ndim=9), ArrayTableError),
    Hostile("ndim_255", lambda: set_entry(base_image(), 0, ndim=255), ArrayTableError),
    Hostile("shape_past_ndim", lambda: set_entry(base_image(), 0, shape7=1), ArrayTableError),
    Hostile("dtype_code_0", lambda: set_entry(base_image(), 0, dtype=0), ArrayTableError),
    Hostile("dtype_code_13", lambda: set_entry(base_image(), 0, dtype=13), ArrayTableError),
    Hostile("dtype_code_255", lambda: set_entry(base_image(), 0, dtype=255), ArrayTableError),
    Hostile("duplicate_names", lambda: _two_arrays((b"w", b"w")), ArrayTableError),
    Hostile("name_invalid_utf8", lambda: _two_arrays((b"w", b"\xc3\x28")), ArrayTableError),
    Hostile(
        "name_out_of_bounds",
        lambda: set_entry(base_image(), 4, name_offset=2**32 - 1),
        ArrayTableError,
    ),
    Hostile("name_too_long", lambda: set_entry(base_image(), 4, name_length=1025), ArrayTableError),
    Hostile("name_empty", lambda: set_entry(base_image(), 4, name_length=0), ArrayTableError),
    Hostile("reserved_nonzero", lambda: set_entry(base_image(), 2, reserved=1), ArrayTableError),
    # -- checksum ---------------------------------------------------------------------------
    Hostile(
        "bit_flip_in_array",
        lambda: _flip(base_image(), _entry_offset(2) + 3, 5),
        ChecksumError,
        "verify",
    ),
    Hostile(
        "bit_flip_in_manifest",
        lambda: _raw.replace_manifest_text(base_image(), b"hostile", b"hostilf", reseal=False),
        ChecksumError,
        "verify",
    ),
    Hostile(
        "bit_flip_in_checksum",
        lambda: _flip(base_image(), _raw.CHECKSUM_AT, 7),
        ChecksumError,
        "verify",
    ),
    # array 0 holds 32 bytes; the next starts 64 bytes after it
    Hostile(
        "bit_flip_in_padding",
        lambda: _flip(base_image(), _entry_offset(0) + 40),
        ChecksumError,
        "verify",
    ),
    # -- model spec (valid image, nonsense model) -------------------------------------------
    Hostile(
        "unknown_model_kind",
        lambda: _manifest(lambda m: m["model"].update(kind="forest_of_doom")),
        ManifestError,
        "load",
    ),
    Hostile(
        "spec_missing_array",
        lambda: _manifest(lambda m: _steps(m)[1]["arrays"].pop("coef")),
        ManifestError,
        "load",
    ),
    Hostile(
        "spec_array_not_stored",
        lambda: _manifest(lambda m: _steps(m)[1]["arrays"].update(coef="model/9/coef")),
        ManifestError,
        "load",
    ),
    Hostile(
        "spec_array_name_not_string",
        lambda: _manifest(lambda m: _steps(m)[1]["arrays"].update(coef=["model/1/coef"])),
        ManifestError,
        "load",
    ),
    Hostile(
        "spec_array_wrong_dtype",
        lambda: _with_array(
            "model/1/coef_int",
            np.ones((3, 4), np.int32),
            lambda m: _steps(m)[1]["arrays"].update(coef="model/1/coef_int"),
        ),
        ManifestError,
        "load",
    ),
    Hostile(
        "spec_array_wrong_shape",
        lambda: _manifest(lambda m: _steps(m)[1]["arrays"].update(coef="model/1/intercept")),
        ManifestError,
        "load",
    ),
    Hostile(
        "spec_arrays_inconsistent",
        lambda: _manifest(lambda m: _steps(m)[1]["arrays"].update(intercept="model/0/center")),
        ManifestError,
        "load",
    ),
    Hostile(
        "spec_params_not_object",
        lambda: _manifest(lambda m: m["model"].update(params=[])),
        ManifestError,
        "load",
    ),
    Hostile(
        "spec_steps_not_list",
        lambda: _manifest(lambda m: m["model"]["params"].update(steps={})),
        ManifestError,
        "load",
    ),
    Hostile(
        "spec_steps_empty",
        lambda: _manifest(lambda m: m["model"]["params"].update(steps=[])),
        ManifestError,
        "load",
    ),
    Hostile(
        "spec_step_not_object",
        lambda: _manifest(lambda m: _steps(m).insert(0, "scaler")),
        ManifestError,
        "load",
    ),
    Hostile(
        "spec_param_wrong_type",
        lambda: _manifest(lambda m: _steps(m)[1]["params"].update(proba=True)),
        ManifestError,
        "load",
    ),
    Hostile(
        "spec_param_bad_choice",
        lambda: _manifest(lambda m: _steps(m)[1]["params"].update(proba="magic")),
        ManifestError,
        "load",
    ),
    Hostile(
        "spec_labels_not_strings",
        lambda: _manifest(
            lambda m: (
                _steps(m)[1]["arrays"].pop("classes"),
                _steps(m)[1]["params"].update(classes={"dtype": "str", "strings": [1, 2, 3]}),
            )
        ),
        ManifestError,
        "load",
    ),
    Hostile(
        "spec_step_cannot_transform",
        lambda: _manifest(lambda m: _steps(m).reverse()),
        ManifestError,
        "load",
    ),
    Hostile(
        "input_n_features_negative",
        lambda: _manifest(lambda m: m["input"].update(n_features=-1)),
        ManifestError,
        "load",
    ),
    Hostile(
        "input_feature_names_wrong_count",
        lambda: _manifest(lambda m: m["input"].update(feature_names=["a", "b"])),
        ManifestError,
        "load",
    ),
    *TABULAR_CASES,
]


def write_all(directory: pathlib.Path = FILES) -> list[pathlib.Path]:
    """Write every case to ``directory`` (removing stale hostile files) and return the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    names = {case.name for case in CASES}
    for old in directory.glob(f"*{SUFFIX}"):
        if old.stem not in names:
            old.unlink()
    paths = []
    for case in CASES:
        path = directory / f"{case.name}{SUFFIX}"
        path.write_bytes(case.make())
        paths.append(path)
    return paths


if __name__ == "__main__":
    written = write_all()
    total = sum(p.stat().st_size for p in written)
    print(f"wrote {len(written)} hostile images ({total} bytes) to {FILES}", file=sys.stderr)
