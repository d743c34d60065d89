"""``modelshelf completion SHELL``: a completion script for bash, zsh or fish, generated from the
command's own parser by shtab (the ``cli`` extra), so that it never drifts from the options.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import MissingDependencyError
from ._output import emit

SHELLS = ("bash", "zsh", "fish")
_INSTALL = {
    "bash": "modelshelf completion bash > ~/.local/share/bash-completion/completions/modelshelf",
    "zsh": "modelshelf completion zsh > ~/.zfunc/_modelshelf  (with fpath+=~/.zfunc before "
    "compinit in ~/.zshrc)",
    "fish": "modelshelf completion fish > ~/.config/fish/completions/modelshelf.fish",
}


def add_command(sub: Any) -> None:
    p = sub.add_parser(
        "completion",
        help="print a shell completion script (bash, zsh, fish)",
        description="Print the completion script for SHELL on stdout; install it with:\n\n"
        + "\n".join(f"  {line}" for line in _INSTALL.values())
        + "\n\nNeeds shtab (pip install 'modelshelf[cli]').",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("shell", choices=SHELLS, metavar="SHELL", help="bash, zsh or fish")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        import shtab
    except ImportError as exc:
        raise MissingDependencyError(
            "shell completion needs shtab, in the 'cli' extra (pip install 'modelshelf[cli]')"
        ) from exc
    from . import build_parser

    parser = build_parser()
    _mark_paths(parser, shtab)
    script = shtab.complete(parser, shell=args.shell)
    if args.json:
        emit({"shell": args.shell, "install": _INSTALL[args.shell], "script": script})
    else:
        sys.stdout.write(script)
    return 0


def _mark_paths(parser: argparse.ArgumentParser, shtab: Any) -> None:
    """Complete file names where a command takes a file (metavars naming a file)."""
    for action in parser._actions:  # argparse has no public walk over its actions
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _mark_paths(child, shtab)
        elif action.metavar in ("FILE", "MODEL.joblib", "MODEL.msi", "PATH"):
            action.complete = shtab.FILE  # type: ignore[attr-defined]
