"""Structured logs (log_format): every line of a real daemon parses, and admin actions carry
their caller as fields."""

from __future__ import annotations

import json
import os
import re

from modelshelf.store import Store

from .conftest import Images, Shelf


def test_json_logs_carry_the_caller_of_admin_actions(shelf: Shelf, images: Images) -> None:
    Store(shelf.store).publish("ns", "lr", images.bytes("logreg"))
    daemon = shelf.make(log_format="json")
    daemon.admin("prefetch", model="ns/lr")
    daemon.stop()
    records = [json.loads(line) for line in daemon.logs().splitlines() if line.strip()]
    assert records and all({"time", "level", "logger", "message"} <= set(r) for r in records)
    (action,) = [r for r in records if r["logger"] == "modelshelfd.audit" and r["op"] == "prefetch"]
    assert (action["uid"], action["pid"]) == (os.getuid(), os.getpid())
    # the name as given: a pipeline filters on model == "ns/lr" (it was "'ns/lr'")
    assert action["model"] == "ns/lr" and action["outcome"].startswith("ok")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", action["time"])


def test_logfmt_lines_are_key_value_pairs(shelf: Shelf) -> None:
    daemon = shelf.make(log_format="logfmt")
    daemon.stop()
    pair = r'[a-z_]+=(?:[A-Za-z0-9_.:/@+-]+|"(?:[^"\\]|\\.)*")'
    lines = [line for line in daemon.logs().splitlines() if line.strip()]
    assert lines and all(re.fullmatch(rf"{pair}(?: {pair})*", line) for line in lines), lines
