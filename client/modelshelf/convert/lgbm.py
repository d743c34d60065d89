"""LightGBM models to tree specs, from their text dumps (tree issue)."""

from __future__ import annotations
