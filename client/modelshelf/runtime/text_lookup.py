"""Features to column indices with numpy: the vocabulary string table, and murmurhash3.

The vocabulary is data, not a dict (docs/format.md, "Text vocabulary", gives the layout byte by
byte): the terms' UTF-8 bytes sorted by (length, bytes) in one blob, a small table of runs (one
per distinct byte length) and the column of every sorted term. Terms of one length L are a
contiguous run of fixed-width L-byte records, which a ``S{L}`` view over the blob reads without
copying and ``np.searchsorted`` searches. Opening an image builds nothing per term; a lookup
costs one binary search per distinct token per batch.

``murmurhash3_32`` reproduces ``sklearn.utils.murmurhash3_32(key, seed=0, positive=False)``
(MurmurHash3 x86 32-bit) bit for bit, vectorised over tokens of equal byte length.
"""

from __future__ import annotations

from operator import itemgetter

import numpy as np

from ..errors import ManifestError
from ._base import Spec

# Terms are encoded so that every Python str has exactly one byte string, lone surrogates too:
# then the table matches the same strings scikit-learn's dict does.
TERM_ENCODING = "utf-8"
TERM_ERRORS = "surrogatepass"


def encode_terms(terms: list[str]) -> list[bytes]:
    try:
        return list(map(str.encode, terms))  # strict UTF-8: the same bytes, in C
    except UnicodeEncodeError:
        return [t.encode(TERM_ENCODING, TERM_ERRORS) for t in terms]


def _by_length(encoded: list[bytes]) -> list[tuple[int, np.ndarray]]:
    """Positions of ``encoded`` grouped by byte length: [(length, positions)], lengths rising."""
    lengths = np.fromiter(map(len, encoded), dtype=np.intp, count=len(encoded))
    order = np.argsort(lengths, kind="stable")
    sorted_lengths = lengths[order]
    cuts = np.flatnonzero(np.diff(sorted_lengths)) + 1
    return [(int(lengths[group[0]]), group) for group in np.split(order, cuts) if len(group)]


def _fixed_width(encoded: list[bytes], positions: np.ndarray, length: int) -> np.ndarray:
    """The byte strings at ``positions`` (all ``length`` bytes long) as an ``S{length}`` array.
    'S' pads with NUL and reads trailing NULs as padding, but every string here fills the
    width exactly, so comparisons are over all ``length`` bytes."""
    picked = (
        itemgetter(*positions.tolist())(encoded) if len(positions) > 1 else [encoded[positions[0]]]
    )
    return np.array(picked, dtype=f"S{length}")


class Vocabulary:
    """A read-only string table mapping terms to column indices (see the module docstring)."""

    def __init__(self, blob: np.ndarray, runs: np.ndarray, columns: np.ndarray) -> None:
        self.blob = blob
        self.runs = runs
        self.columns = columns
        self._views: dict[int, tuple[int, np.ndarray]] = {}

    @classmethod
    def from_spec(cls, spec: Spec) -> Vocabulary:
        blob = spec.array("terms", ndim=1, kind="u")
        runs = spec.array("runs", ndim=2, kind="i")
        columns = spec.array("columns", ndim=1, kind="i")
        spec.check(blob.dtype.itemsize == 1, "terms must be a uint8 byte blob")
        spec.check(runs.shape[1:] == (3,), "runs must be rows of (length, offset, count)")
        # O(number of distinct lengths): each run must tile the blob, lengths rising.
        lengths, offsets, counts = runs[:, 0], runs[:, 1], runs[:, 2]
        ends = offsets + lengths * counts
        spec.check(
            bool((lengths >= 0).all() and (counts > 0).all() and (np.diff(lengths) > 0).all()),
            "runs must have rising lengths and positive counts",
        )
        # Bounded first, so that offset + length * count cannot overflow int64.
        spec.check(
            bool((lengths <= len(blob)).all() and (counts <= len(columns)).all()),
            "runs reach past the terms blob",
        )
        spec.check(
            bool(len(runs) == 0 or (offsets[0] == 0 and (offsets[1:] == ends[:-1]).all())),
            "runs must tile the terms blob in order",
        )
        spec.check((int(ends[-1]) if len(runs) else 0) == len(blob), "runs must cover the blob")
        spec.check(int(counts.sum()) == len(columns), "one column per term")
        spec.check((lengths[lengths == 0].size == 0) or int(counts[0]) == 1, "one empty term")
        return cls(blob, runs, columns)

    def __len__(self) -> int:
        return len(self.columns)

    def _run(self, length: int) -> tuple[int, np.ndarray] | None:
        """(first sorted position, ``S{length}`` view) of the terms of that byte length."""
        cached = self._views.get(length)
        if cached is not None:
            return cached
        row = int(np.searchsorted(self.runs[:, 0], length))
        if row == len(self.runs) or int(self.runs[row, 0]) != length or length == 0:
            return None
        _, offset, count = (int(v) for v in self.runs[row])
        first = int(self.runs[:row, 2].sum())
        view = self.blob[offset : offset + length * count].view(f"S{length}")
        self._views[length] = (first, view)
        return first, view

    def _empty_term_column(self) -> int:
        if len(self.runs) and int(self.runs[0, 0]) == 0:
            return int(self.columns[0])
        return -1

    def lookup(self, terms: list[str]) -> np.ndarray:
        """The column of every term, -1 for a term not in the vocabulary."""
        encoded = encode_terms(terms)
        out = np.full(len(encoded), -1, dtype=np.int64)
        for length, positions in _by_length(encoded):
            if length == 0:
                out[positions] = self._empty_term_column()
                continue
            run = self._run(length)
            if run is None:
                continue
            first, table = run
            query = _fixed_width(encoded, positions, length)
            found = np.searchsorted(table, query)
            np.minimum(found, len(table) - 1, out=found)
            hit = table[found] == query
            out[positions[hit]] = self.columns[first + found[hit]]
        # Columns are checked where they are used, not at load (that would read all of them).
        if len(out) and (out.max() >= len(self.columns) or out.min() < -1):
            raise ManifestError(f"vocabulary columns must lie in [0, {len(self.columns)})")
        return out


def build_vocabulary(vocabulary: dict[str, int]) -> dict[str, np.ndarray]:
    """The arrays of a vocabulary table for ``{term: column}`` (compile side)."""
    items = sorted(
        ((term.encode(TERM_ENCODING, TERM_ERRORS), column) for term, column in vocabulary.items()),
        key=lambda item: (len(item[0]), item[0]),
    )
    blob = np.frombuffer(b"".join(term for term, _ in items), dtype=np.uint8)
    columns = np.array([column for _, column in items], dtype=np.int32)
    runs: list[list[int]] = []
    offset = 0
    for term, _ in items:
        if runs and runs[-1][0] == len(term):
            runs[-1][2] += 1
        else:
            runs.append([len(term), offset, 1])
        offset += len(term)
    return {
        "terms": blob,
        "runs": np.array(runs, dtype=np.int64).reshape(-1, 3),
        "columns": columns,
    }


_C1, _C2 = np.uint32(0xCC9E2D51), np.uint32(0x1B873593)


def _rotl(x: np.ndarray, r: int) -> np.ndarray:
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def _mix_key(k: np.ndarray) -> np.ndarray:
    k = k * _C1
    k = _rotl(k, 15)
    return k * _C2


def murmurhash3_32(keys: list[bytes]) -> np.ndarray:
    """MurmurHash3 x86 32-bit with seed 0 of every byte string, as signed int32."""
    out = np.empty(len(keys), dtype=np.uint32)
    for length, positions in _by_length(keys):
        if length == 0:
            rows = np.zeros((len(positions), 0), dtype=np.uint8)
        else:
            rows = _fixed_width(keys, positions, length).view(np.uint8).reshape(-1, length)
        out[positions] = _murmur_rows(rows, length)
    return out.view(np.int32)


def _murmur_rows(rows: np.ndarray, length: int) -> np.ndarray:
    n_blocks = length // 4
    h = np.zeros(len(rows), dtype=np.uint32)
    if n_blocks:
        blocks = np.ascontiguousarray(rows[:, : 4 * n_blocks]).view("<u4").astype(np.uint32)
        mixed = _mix_key(blocks)  # the per-block key mixing is independent: all at once
        for i in range(n_blocks):
            h ^= mixed[:, i]
            h = _rotl(h, 13)
            h = h * np.uint32(5) + np.uint32(0xE6546B64)
    tail = length & 3
    if tail:
        k = np.zeros(len(rows), dtype=np.uint32)
        base = 4 * n_blocks
        for j in range(tail - 1, -1, -1):
            k ^= rows[:, base + j].astype(np.uint32) << np.uint32(8 * j)
        h ^= _mix_key(k)
    h ^= np.uint32(length & 0xFFFFFFFF)
    h ^= h >> np.uint32(16)
    h = h * np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h = h * np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
    return h


def hashed_columns(hashes: np.ndarray, n_features: int) -> np.ndarray:
    """``abs(h) % n_features`` as scikit-learn's ``_hashing_fast`` computes it, where
    ``abs(-2**31)`` is taken as 2**31."""
    return np.abs(hashes.astype(np.int64)) % n_features
