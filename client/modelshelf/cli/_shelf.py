"""Shelf commands talking to the daemon (arrive with the daemon issue)."""

from __future__ import annotations

from typing import Any


def add_commands(sub: Any) -> None:
    del sub
