"""``python -m modelshelfd`` and the ``modelshelfd`` console script."""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import json
import logging
import os
import re
import sys
import urllib.parse
from collections.abc import Sequence
from dataclasses import asdict

from . import logformat
from .config import ConfigError, build_parser, config_from_sources, config_sources

_SECRET = re.compile(r"secret|token|password|credential|key", re.IGNORECASE)

# glibc's mallopt parameters (malloc.h)
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def tame_malloc() -> bool:
    """Keep the daemon's heap flat under fetch traffic: with one malloc arena per thread and a
    dynamic mmap threshold, glibc keeps the memory of large, short-lived fetch buffers (store
    reads in worker threads) and the daemon's RSS grows by tens of MB a minute without any
    object leaking (docs/benchmarks.md, "Many models"). Two arenas and buffers of 128 KiB or
    more in their own mappings (returned to the system when freed) cost nothing measurable.
    Called before any thread starts; the MALLOC_* environment variables, if set, win. False
    where the C library is not glibc."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    if "MALLOC_ARENA_MAX" not in os.environ:
        mallopt(_M_ARENA_MAX, 2)
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        mallopt(_M_MMAP_THRESHOLD, 128 * 1024)
    return True


def _without_password(value: object) -> object:
    """A URL's password (``http://user:pass@proxy``) as ``<hidden>``; anything else as is."""
    if not isinstance(value, str) or "@" not in value:
        return value
    parts = urllib.parse.urlsplit(value)
    if parts.password is None:
        return value
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{parts.username}:<hidden>@{host}" if parts.username else f"<hidden>@{host}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def main(argv: Sequence[str] | None = None) -> int:
    tame_malloc()
    try:
        sources = config_sources(argv)
        config = config_from_sources(sources)
    except ConfigError as exc:
        print(f"modelshelfd: configuration error: {exc}", file=sys.stderr)
        return 2
    if build_parser().parse_args(argv).check_config:
        # what the daemon would run with: l1_bytes capped below the memory limit (the warning
        # on stderr) and the clients' advice that follows it
        logging.basicConfig(level=logging.WARNING, format="modelshelfd: %(message)s")
        from . import machine
        from .server import held_advice

        budget = machine.l1_budget(config.l1_bytes, machine.memory_limit())
        config = dataclasses.replace(held_advice(config, sources, budget), l1_bytes=budget)
        effective = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()}
        effective["store_options"] = {  # credentials are checked, never printed
            k: "<hidden>" if _SECRET.search(k) else _without_password(v)
            for k, v in config.store_options.items()
        }
        print(json.dumps(effective, indent=2, sort_keys=True, default=str))
        return 0
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logformat.formatter(config.log_format))
    logging.basicConfig(level=config.log_level, handlers=[handler])
    from .server import StartupError, run

    try:
        run(config, argv, sources)
    except StartupError as exc:
        logging.getLogger("modelshelfd").error("cannot start: %s", exc)
        return 1
    except KeyboardInterrupt:
        return 130
    _exit_now_if_threads_linger()
    return 0


def _exit_now_if_threads_linger() -> None:
    """The daemon has stopped (sockets, segments, files closed): a thread still blocked in a
    store read (a slow or stuck store) must not keep the process, and its cache lock, for
    minutes. Exit without joining it."""
    import threading
    import time

    deadline = time.monotonic() + 1.0  # idle workers told to end (loop.close) end at once
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join(max(0.0, deadline - time.monotonic()))
    lingering = [
        t for t in threading.enumerate()
        if t is not threading.main_thread() and t.is_alive() and not t.daemon
    ]  # fmt: skip
    if lingering:
        logging.getLogger("modelshelfd").info(
            "exiting without waiting for %d thread(s) still in store reads", len(lingering)
        )
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
