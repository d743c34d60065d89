"""docs/configuration.md documents every configuration key the daemon reads, and
docs/operations.md every counter it keeps."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from modelshelfd.config import Config

DOC = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"


def test_every_config_key_is_documented() -> None:
    text = DOC.read_text()
    missing = [f.name for f in dataclasses.fields(Config) if f"`{f.name}`" not in text]
    assert missing == [], f"docs/configuration.md does not document {missing}"


def test_every_key_has_its_environment_variable() -> None:
    text = DOC.read_text()
    missing = [
        f.name for f in dataclasses.fields(Config) if f"MODELSHELF_{f.name.upper()}" not in text
    ]
    assert missing == [], f"docs/configuration.md does not name the variables of {missing}"


def test_operations_md_explains_every_counter() -> None:
    from modelshelfd.shelf import EVENTS

    doc = (Path(__file__).parents[3] / "docs" / "operations.md").read_text()
    extra = ("l1_evictions", "l2_evictions", "adopted_l2", "connections_refused")
    missing = [e for e in (*EVENTS, *extra) if f"`{e}`" not in doc and not e.startswith("refused_")]
    assert missing == [], f"counters docs/operations.md does not explain: {missing}"
    assert "`refused_<code>`" in doc
