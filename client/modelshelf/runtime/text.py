"""Text vectorizers over position-independent vocabularies (text issue)."""

from __future__ import annotations
