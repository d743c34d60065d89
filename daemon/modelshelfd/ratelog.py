"""Logging at a bounded rate: a hostile or unlucky peer must never flood the log.

``RateLimited.log(level, key, msg, *args)`` writes at most one line per ``key`` every
``interval`` seconds; the next line that gets through says how many were suppressed meanwhile.
Keys are bounded too (the oldest is forgotten). Keys must never come from a peer.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable

MAX_KEYS = 256


class RateLimited:
    """A logger wrapper that writes at most one line per key and interval."""

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval = interval
        self.clock = clock
        self._seen: OrderedDict[str, tuple[float, int]] = OrderedDict()  # key -> (last, muted)

    def log(
        self,
        level: int,
        key: str,
        msg: str,
        *args: object,
        exc_info: BaseException | bool | None = None,
    ) -> bool:
        """Log unless ``key`` was logged less than ``interval`` ago; True if written."""
        now = self.clock()
        last, muted = self._seen.get(key, (float("-inf"), 0))
        if now - last < self.interval:
            self._seen[key] = (last, muted + 1)
            return False
        if muted:
            msg += " (%d more like this in the last %.0f s)"
            args = (*args, muted, now - last)
        self.logger.log(level, msg, *args, exc_info=exc_info)
        self._seen[key] = (now, 0)
        self._seen.move_to_end(key)
        while len(self._seen) > MAX_KEYS:
            self._seen.popitem(last=False)
        return True
