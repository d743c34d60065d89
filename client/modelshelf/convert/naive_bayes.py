"""Naive Bayes classifiers to specs."""

from __future__ import annotations
