"""docs/configuration.md documents every configuration key the daemon reads."""

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
