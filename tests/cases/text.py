"""Exactness cases: text."""

from __future__ import annotations

from ._case import Case

CASES: list[Case] = []
