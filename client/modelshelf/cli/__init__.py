"""The ``modelshelf`` command. Each submodule adds its subcommands to the parser:

- ``_images``: compile, inspect (publisher side and anyone holding an image file)
- ``_shelf``: publish, models, gc, status, ls, evict, pin, unpin, rm, stats (the store and the
  daemon's admin socket); ``_prefetch``: prefetch
- ``_completion``: completion (shell completion scripts, generated from this parser)
- ``_output``: sizes and durations in units, JSON, progress bars, the usage error

The global options (``--json``, ``--admin-socket``, ``--progress``) are accepted before and after
the command. A failure is one line on stderr, or with ``--json`` one object on stdout, and an
exit status per kind of error (``EXIT_STATUSES``, docs/operations.md "The admin CLI").
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from .. import _kernels
from .._version import __version__
from . import _completion, _images, _prefetch, _shelf
from ._output import UsageError

# exit status -> meaning; the statuses of ModelshelfError subclasses (modelshelf.errors) and
# the command line's own
EXIT_STATUSES = {
    0: "success (publish of unchanged bytes included)",
    1: "any other error",
    2: "bad usage or bad input (an option, a name, a file that cannot be used)",
    3: "not found (no such model or version in the store, or not on this node)",
    4: "access denied (not an admin, or no access to the namespace)",
    5: "busy (the shelf is full of leases, or a limit was hit)",
    6: "no daemon answers on the admin socket",
    7: "the object store is unavailable",
    8: "an invalid image (structure or checksum)",
    9: "the process on the socket is not a daemon this command trusts",
    130: "interrupted (Ctrl-C)",
}


def _epilog() -> str:
    lines = [
        "Global options (--json, --admin-socket, --progress) go before or after the command.",
        "With --json, output is JSON on stdout, errors included: "
        '{"error": {"type", "code", "message", "exit_status"}}.',
        "",
        "exit statuses:",
    ]
    lines += [f"  {status:<4} {meaning}" for status, meaning in EXIT_STATUSES.items()]
    lines += ["", "modelshelf COMMAND --help describes a command."]
    return "\n".join(lines)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are JSON on stdout in ``--json`` mode."""

    json_errors = False  # set by main() from the raw arguments: parsing may be what failed

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # no abbreviations: "--js" read as --json, and a new option would change what an
        # abbreviation in someone's script means
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        if self.json_errors:
            _json_error("UsageError", "usage", f"{self.prog}: {message}", 2)
            sys.exit(2)
        super().error(message)


def _global_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """The options every command takes. On the subcommands their default is SUPPRESS, so that
    an option given before the command is not reset by the subcommand's parser."""

    def default(value: Any) -> Any:
        return value if top else argparse.SUPPRESS

    group = parser.add_argument_group("global options (before or after the command)")
    group.add_argument(
        "--json", action="store_true", default=default(False),
        help="machine-readable output: JSON on stdout, errors included",
    )  # fmt: skip
    group.add_argument(
        "--admin-socket", metavar="PATH", default=default(None),
        help="the daemon's admin socket (default: $MODELSHELF_ADMIN_SOCKET, else admin.sock "
        "next to $MODELSHELF_SOCKET or the runtime path)",
    )  # fmt: skip
    group.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=default(None),
        help="progress bars on stderr (publish --store of an image file, prefetch): default on "
        "a terminal only; never with --json; needs tqdm (the cli extra)",
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="modelshelf",
        description="Compile models into images, inspect them, publish them, and manage the "
        "node's shelf.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # which kernels serve (compiled, or numpy without the extension): how to check an install
    version = f"modelshelf {__version__} (kernels: {_kernels.mode()})"
    parser.add_argument("--version", action="version", version=version)
    _global_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    _images.add_commands(sub)
    _shelf.add_commands(sub)
    _prefetch.add_command(sub)
    _completion.add_command(sub)
    for command in sub.choices.values():
        _global_options(command, top=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # file names that are not UTF-8 (surrogates once decoded) are printed escaped, JSON
    # included ("\\udce9" is a JSON escape), rather than ending the command with a traceback
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    args_list = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in args_list[: args_list.index("--") if "--" in args_list else None]
    _Parser.json_errors = as_json
    parser = build_parser()
    args = parser.parse_args(args_list)
    if args.command is None:  # a usage error: the commands listed, on stderr, status 2
        if as_json:
            _json_error("UsageError", "usage", "no command given; modelshelf --help lists them", 2)
        else:
            parser.print_help(sys.stderr)
        return 2
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
        kind, status = _classify(exc)
        if args.json:
            _json_error(type(exc).__name__, kind, _one_line(exc), status)
        else:
            print(f"modelshelf {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return status


def _classify(exc: BaseException) -> tuple[str, int]:
    """The error's code and exit status: a ModelshelfError's own, else by the builtin kind."""
    from ..errors import ModelshelfError

    if isinstance(exc, ModelshelfError):
        return exc.code, exc.exit_status
    if isinstance(exc, UsageError):
        return "usage", 2
    if isinstance(exc, ValueError | FileNotFoundError | IsADirectoryError | NotADirectoryError):
        return "bad_input", 2
    if isinstance(exc, PermissionError):
        return "access_denied", 4
    return "os_error", 1


def _json_error(kind: str, code: str, message: str, status: int) -> None:
    error = {"type": kind, "code": code, "message": message, "exit_status": status}
    print(json.dumps({"error": error}, sort_keys=True), flush=True)


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
