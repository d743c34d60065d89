"""Text vectorizers to specs (text issue)."""

from __future__ import annotations
