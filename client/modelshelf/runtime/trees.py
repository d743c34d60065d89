"""Tree ensembles: flat node arrays, vectorised traversal (tree issue)."""

from __future__ import annotations
