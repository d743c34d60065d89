"""XGBoost models to tree specs, from their JSON dumps (tree issue)."""

from __future__ import annotations
