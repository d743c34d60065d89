"""modelshelfd: the per-node daemon that keeps model images on a shelf (daemon issue)."""

from __future__ import annotations
