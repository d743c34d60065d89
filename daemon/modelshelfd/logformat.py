"""The daemon's log lines: plain text (the default), logfmt or JSON (``log_format``).

Structured lines carry ``time``, ``level``, ``logger`` and ``message``, plus the fields a call
passed in ``extra`` (the audit log's ``op``, ``model``, ``uid``, ``pid``, ``peer``, ``outcome``),
so that a log pipeline can select admin actions by caller or model without parsing sentences.
``time`` is ISO 8601 in UTC with milliseconds.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from typing import Any

TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FIELDS = ("op", "model", "uid", "pid", "peer", "outcome")  # extra fields a record may carry
_BARE = re.compile(r"[A-Za-z0-9_.:/@+-]+")


def _fields(record: logging.LogRecord, formatter: logging.Formatter) -> dict[str, Any]:
    out: dict[str, Any] = {
        "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
            timespec="milliseconds"
        ),
        "level": record.levelname,
        "logger": record.name,
        "message": record.getMessage(),
    }
    for name in FIELDS:
        if hasattr(record, name):
            out[name] = getattr(record, name)
    if record.exc_info:
        out["exception"] = formatter.formatException(record.exc_info)
    return out


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(record, self), default=str)


class LogfmtFormatter(logging.Formatter):
    """``key=value`` pairs, values quoted (JSON string rules) unless they are bare words."""

    def format(self, record: logging.LogRecord) -> str:
        parts = []
        for key, value in _fields(record, self).items():
            text = str(value)
            parts.append(f"{key}={text if _BARE.fullmatch(text) else json.dumps(text)}")
        return " ".join(parts)


def formatter(kind: str) -> logging.Formatter:
    if kind == "json":
        return JsonFormatter()
    if kind == "logfmt":
        return LogfmtFormatter()
    return logging.Formatter(TEXT)
