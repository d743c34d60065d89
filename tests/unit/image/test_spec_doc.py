"""docs/format.md agrees with the code: header and entry tables, dtype codes, limits, kinds."""

from __future__ import annotations

import pathlib
import re
import struct

import modelshelf.image as image_pkg
from modelshelf.image import _format
from modelshelf.runtime import registered_kinds
from tests.adversarial import _raw

DOC = (pathlib.Path(__file__).parents[3] / "docs" / "format.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    start = DOC.index(f"\n## {title}\n")
    end = DOC.find("\n## ", start + 1)
    return DOC[start : end if end > 0 else None]


def _field_rows(title: str) -> dict[str, tuple[int, int]]:
    rows = re.findall(r"^\|\s*(\d+)\s*\|\s*(\d+)\s*\|[^|]*\|\s*`(\w+)`", _section(title), re.M)
    return {name: (int(offset), int(size)) for offset, size, name in rows}


def _sizes(fields: dict[str, tuple[int, str]]) -> dict[str, tuple[int, int]]:
    return {k: (at, struct.calcsize(fmt)) for k, (at, fmt) in fields.items()}


def test_header_table() -> None:
    rows = _field_rows("Header")
    assert rows == _sizes(_raw.HEADER_FIELDS)
    assert sum(size for _, size in rows.values()) == _format.HEADER_SIZE == _format.HEADER.size
    assert rows["checksum"][0] == _format.CHECKSUM_OFFSET


def test_entry_table() -> None:
    rows = _field_rows("Array table entry")
    expected = _sizes({k: v for k, v in _raw.ENTRY_FIELDS.items() if not k.startswith("shape")})
    expected["shape"] = (24, 64)
    assert rows == expected
    assert sum(size for _, size in rows.values()) == _format.ENTRY_SIZE
    assert {name: _format.ENTRY_DTYPE.fields[name][1] for name in rows} == {
        name: at for name, (at, _) in rows.items()
    }


def test_dtype_codes() -> None:
    pairs = re.findall(r"\|\s*(\d+)\s*\|\s*(\w+)\s*\|\s*(\d+)\s*\|", _section("Dtype codes"))
    documented = {int(code): (name, int(size)) for code, name, size in pairs}
    assert documented == {c: (dt.name, dt.itemsize) for c, dt in _format.DTYPES.items()}
    assert {name: code for code, (name, _) in documented.items()} == _raw.DTYPE_CODES


def test_limits() -> None:
    names = set(re.findall(r"^\|\s*`(MAX_\w+|ALIGNMENT)`", _section("Limits"), re.M))
    assert names == {n for n in image_pkg.__all__ if n.startswith("MAX_")} | {"ALIGNMENT"}
    assert (_format.MAX_STRINGS_SIZE, _format.MAX_MANIFEST_SIZE) == (2**30, 64 << 20)
    assert (_format.MAX_IMAGE_SIZE, _format.MAX_DIM, _format.MAX_ARRAYS) == (2**40, 2**40, 2**20)
    assert (_format.MAX_NAME_LENGTH, _format.MAX_NDIM, _format.MAX_MANIFEST_DEPTH) == (1024, 8, 64)


def test_every_registered_kind_is_documented() -> None:
    """A family that registers a kind names it in docs/format.md, "Model kinds"."""
    section = _section("Model kinds")
    missing = [k for k in registered_kinds() if f"`{k}`" not in section]
    assert not missing, f"document these kinds in docs/format.md: {missing}"
    assert "### Tree ensembles" in section and "### Text vectorizers" in section
