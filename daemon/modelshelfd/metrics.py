"""The daemon's own Prometheus metrics that are observed as events happen (histograms, request
counters), in a registry of this daemon's own, never prometheus-client's global one.

Every labelled series is created at start, so that a scrape shows zeros rather than nothing
before the first event (a rate over a missing series is no rate at all). The shelf's counters
and gauges are collected at scrape time by ``http.py`` into the same registry.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# seconds: an L1 hit answers in microseconds, a cold fetch of a large image in tens of seconds
ACQUIRE_BUCKETS = (1e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0)
FETCH_BUCKETS = (1e-3, 5e-3, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
INFER_BUCKETS = (1e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)

TIERS_FOUND = ("l1", "l2", "l3")  # where an acquired image was when asked
TIERS_FROM = ("l2", "l3")  # where a fetched image came from: its L2 file, the store
# how an HTTP inference request ended; "ok" and one per error kind (http.py maps them)
INFER_OUTCOMES = (
    "ok", "bad_request", "not_found", "access_denied", "busy", "queue_full",
    "store_unavailable", "image_error", "too_large", "timeout", "disconnected", "internal",
)  # fmt: skip


class Metrics:
    """Histograms and counters observed by the shelf, the handlers and the HTTP endpoint."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.shelf_collected = False  # the HTTP endpoint's shelf collector is registered
        self.acquire_seconds = Histogram(
            "modelshelf_acquire_seconds",
            "Seconds to serve one acquire (a lease on an image), by the tier the image was in",
            ["tier"],
            buckets=ACQUIRE_BUCKETS,
            registry=self.registry,
        )
        self.fetch_seconds = Histogram(
            "modelshelf_fetch_seconds",
            "Seconds to bring one image from a tier: l2 (its file copied into shared memory), "
            "l3 (read from the store and verified)",
            ["tier"],
            buckets=FETCH_BUCKETS,
            registry=self.registry,
        )
        self.infer_seconds = Histogram(
            "modelshelf_http_infer_seconds",
            "Seconds to answer one HTTP inference request (Open Inference Protocol), any outcome",
            buckets=INFER_BUCKETS,
            registry=self.registry,
        )
        self.infer_requests = Counter(
            "modelshelf_http_infer_requests",
            "HTTP inference requests by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.refused = Counter(
            "modelshelf_http_v2_refused",
            "Other /v2 requests (metadata, readiness, repository) refused, by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.infer_in_progress = Gauge(
            "modelshelf_http_infer_in_progress",
            "HTTP inference requests admitted and not finished (queued or running)",
            registry=self.registry,
        )
        for tier in TIERS_FOUND:
            self.acquire_seconds.labels(tier)
        for tier in TIERS_FROM:
            self.fetch_seconds.labels(tier)
        for outcome in INFER_OUTCOMES:
            self.infer_requests.labels(outcome)
            if outcome != "ok":
                self.refused.labels(outcome)

    def acquired(self, tier: str, seconds: float) -> None:
        self.acquire_seconds.labels(tier).observe(seconds)

    def fetched(self, tier: str, seconds: float) -> None:
        self.fetch_seconds.labels(tier).observe(seconds)
