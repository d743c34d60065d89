"""The ``modelshelf`` command. Each submodule adds its subcommands to the parser:

- ``_images``: compile, inspect (publisher side and anyone holding an image file)
- ``_shelf``: publish, gc, status, ls, prefetch, evict, pin, unpin, rm, stats (the daemon's admin)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .._version import __version__
from . import _images, _shelf


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelshelf",
        description="Compile models into images, inspect them, and manage the node's shelf.",
    )
    parser.add_argument("--version", action="version", version=f"modelshelf {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _images.add_commands(sub)
    _shelf.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # the command line shows one line, not a traceback
        from ..errors import ModelshelfError

        if not isinstance(exc, ModelshelfError | OSError | ValueError):
            raise
        print(f"modelshelf {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return exc.exit_status if isinstance(exc, ModelshelfError) else 1


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
