"""``modelshelf compile`` and ``modelshelf inspect``."""

from __future__ import annotations

import argparse
from typing import Any


def add_commands(sub: Any) -> None:
    del sub  # filled in by the CLI work of the foundation issue


_ = argparse
