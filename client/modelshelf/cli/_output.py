"""What every command shares for its output: sizes and durations in units for people, one JSON
document for scripts, progress bars only on a terminal, and the command line's own error.

Progress bars need tqdm (the ``cli`` extra): without it a command prints no bar, and says so
once if ``--progress`` asked for one. Bars go to stderr, never in ``--json`` mode.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any


class UsageError(ValueError):
    """The command line asks for something the command will not do as given (exit status 2)."""


def size(n: int | float | None) -> str:
    """``1536`` -> ``1.5 KiB``: bytes in binary units."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def duration(seconds: float | None) -> str:
    """``0.0004`` -> ``400 us``, ``0.25`` -> ``250 ms``, ``42`` -> ``42 s``, ``200`` ->
    ``3.3 min``, then h and d."""
    if seconds is None:
        return "-"
    s = float(seconds)
    if s < 0.001:
        return f"{s * 1e6:.0f} us"
    if s < 1:
        return f"{s * 1000:.0f} ms"
    if s < 60:
        return f"{s:.0f} s"
    if s < 3600:
        return f"{s / 60:.1f} min"
    if s < 86400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} d"


def emit(document: Any) -> None:
    """One JSON document on stdout (``--json``)."""
    print(json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False), flush=True)


def pairs(fields: Mapping[str, Any]) -> str:
    """``key=value`` pairs on one line; a list as its items joined by commas (was its repr,
    ``tiers=['l1', 'l2']``)."""
    return " ".join(
        f"{k}={','.join(map(str, v)) if isinstance(v, list | tuple) else v}"
        for k, v in fields.items()
    )


def table(rows: Sequence[Sequence[str]]) -> None:
    """Rows of cells in left-aligned columns; the first row is the header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def progress_bar(args: argparse.Namespace, total: int, **options: Any) -> Any:
    """A tqdm bar on stderr, or None: never with ``--json``; with ``--progress``, even when
    stderr is not a terminal; with ``--no-progress``, never; else on a terminal only."""
    wanted = getattr(args, "progress", None)
    if getattr(args, "json", False) or wanted is False:
        return None
    if wanted is None and not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        if wanted:
            print(
                "modelshelf: no progress bar without tqdm (pip install 'modelshelf[cli]')",
                file=sys.stderr,
            )
        return None
    return tqdm(total=total, file=sys.stderr, **options)
