"""Tree ensembles, the two traversal kernels over a forest's flat node arrays
(runtime/trees_forest.py describes the layout; ``Forest.leaves`` picks the kernel).

Both return the leaf reached by every (tree, row) pair, tree-major, and both advance every pair
one level per step, so their cost is (numpy calls per step) x (steps) + (work per pair):

- ``walk_levels`` gathers feature, input value, threshold and child of each pair's node at each
  step (about seven numpy calls over the pairs still walking). Its work is proportional to the
  nodes actually visited, which suits forests of many nodes.
- ``walk_table``, for one row, first decides every node at once (``next = child + (x > t)``,
  three passes over the nodes), then a step is one gather, ``node = next[node]``. That removes
  most numpy calls per step, the floor of the level walk, where deciding nodes nobody visits
  costs less than the calls it saves: over the whole forest when it is small, else over its
  first levels (nodes laid out level by level make them a prefix of the arrays), the level
  walk finishing the deep ones. (For batches the table was measured slower: rows x nodes cells
  are many and their gathers miss the cache.)

Every gather is bounds-checked by numpy, so a corrupt index raises ``IndexError`` (the caller
turns it into ``ManifestError``), never a bad read.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

COMPACT_EVERY = 4  # steps between two compactions of the (tree, row) pairs still walking


def walk_levels(
    W: np.ndarray,
    roots: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    child: np.ndarray,
    missing: np.ndarray | None,
    depth: int,
    start: np.ndarray | None = None,
    compact: Sequence[bool] | None = None,
) -> np.ndarray:
    """Leaf node of every (tree, row) pair, found level by level; drops finished pairs.
    ``start``: the pairs' nodes so far (default: the roots); ``depth``: the steps left;
    ``compact``: before which steps to drop finished pairs (default: every few steps)."""
    n, m = W.shape
    flat = W.reshape(-1)
    one_row = n == 1  # every offset is 0: skip the add
    offsets = np.tile(np.arange(0, n * m, m, dtype=np.intp), len(roots))
    has_nan = missing is not None and bool(np.isnan(W).any())
    first = 0
    if start is not None:
        node = start
    elif depth and not one_row:
        node, first = _from_roots(W, roots, feature, threshold, child, missing, has_nan), 1
    else:
        node = np.repeat(roots.astype(np.intp), n)
    full: np.ndarray | None = None  # every pair's node, once pairs start being dropped
    where = np.empty(0, dtype=np.intp)  # positions in ``full`` of the pairs still walking
    for step in range(first, depth):
        due = compact[step] if compact is not None else step % COMPACT_EVERY == 0
        if step and due:
            walking = np.flatnonzero(child[node] != node)
            if len(walking) < len(node):
                if full is None:
                    full, where = node, walking
                else:
                    full[where] = node
                    where = where[walking]
                node = node[walking]
                if not one_row:
                    offsets = offsets[walking]
                if not len(node):
                    break
        x = flat[feature[node]] if one_row else flat[feature[node] + offsets]
        right = x > threshold[node]
        if has_nan:
            nan = np.isnan(x)
            if nan.any():
                stuck = node[nan]
                assert missing is not None
                right[nan] = (missing[stuck >> 3] >> (stuck & 7)) & 1
        node = np.add(child[node], right, dtype=np.intp)
    if full is None:
        return node
    full[where] = node
    return full


def _from_roots(
    W: np.ndarray,
    roots: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    child: np.ndarray,
    missing: np.ndarray | None,
    has_nan: bool,
) -> np.ndarray:
    """The first step of every pair: all rows of a tree share its root, so gather the root's
    fields once per tree and whole input columns, not once per pair (three passes, not seven)."""
    x = W.take(feature[roots], axis=1)  # (rows, trees)
    right = x > threshold[roots]
    if has_nan:
        nan = np.isnan(x)
        if nan.any():
            assert missing is not None
            bits = ((missing[roots >> 3] >> (roots & 7)) & 1).astype(bool)
            right = np.where(nan, bits, right)
    return np.add(child[roots][:, None], right.T, dtype=np.intp).reshape(-1)


def walk_table(
    row: np.ndarray,
    roots: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    child: np.ndarray,
    missing: np.ndarray | None,
    steps: int,
) -> np.ndarray:
    """Every tree's node after ``steps`` steps for one row, from a table of the next node of
    each of the first ``len(feature)`` nodes (the caller passes a prefix that holds every node
    those steps can visit: all of them, or, when nodes are laid out level by level, the first
    ``steps`` levels)."""
    x = row.take(feature)
    right = x > threshold
    if missing is not None:
        nan = np.isnan(x)
        if nan.any():
            bits = np.unpackbits(missing, count=len(feature), bitorder="little").view(bool)
            right = np.where(nan, bits, right)
    table = child + right  # child's int32: the table stays half the size of intp
    node = roots
    for _ in range(steps):
        node = table[node]
    return node.astype(np.intp)
