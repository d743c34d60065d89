"""Exactness cases: neural."""

from __future__ import annotations

from ._case import Case

CASES: list[Case] = []
