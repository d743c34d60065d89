"""The many-model scenario: a catalog, a request stream, a real daemon and real workers.

Shared by ``python -m modelshelfd.demo`` (a minute, demo scale) and ``bench/scale.py`` (the
mission's scale), so that both measure the same thing the same way:

    catalog     lognormal image sizes; one real MLPClassifier image per model, published to a
                ``file://`` store under tenants' namespaces; cached by its parameters
    traffic     Zipf popularity over models mixed with bursty tenants; arrival times, fixed
                by a seed
    runner      a ``modelshelfd`` subprocess (``daemon``), long-lived spawned workers
                (``workers``: one ``Client`` each, open-loop arrivals), and a monitor
                (``monitor``) sampling the daemon, its shared memory and the workers' PSS once
                a second
    summary     requests, failures, latency per source, memory against budgets, daemon CPU and
                RSS, bytes read from the store, and each goal met or missed

Only the standard library, numpy, psutil and modelshelf are imported at module level: the
daemon extra does not bring scikit-learn, which only the catalog build needs.
"""

from __future__ import annotations

from .catalog import Catalog, CatalogSpec, cached_catalog, parse_bytes, size_argument
from .runner import RunResult, Setup, run
from .summary import (
    GOAL_CPU_PERCENT,
    GOAL_P50_MS,
    GOAL_P99_MS,
    GOAL_RSS_SLOPE_MB_PER_MIN,
    SOURCE_LABELS,
    format_ms,
    report_lines,
    summarize,
)
from .traffic import Traffic
from .workers import CODES, SOURCES

__all__ = [
    "CODES",
    "GOAL_CPU_PERCENT",
    "GOAL_P50_MS",
    "GOAL_P99_MS",
    "GOAL_RSS_SLOPE_MB_PER_MIN",
    "SOURCES",
    "SOURCE_LABELS",
    "Catalog",
    "CatalogSpec",
    "RunResult",
    "Setup",
    "Traffic",
    "cached_catalog",
    "format_ms",
    "parse_bytes",
    "report_lines",
    "run",
    "size_argument",
    "summarize",
]
