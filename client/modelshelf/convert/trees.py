"""scikit-learn trees and ensembles to specs (tree issue)."""

from __future__ import annotations
