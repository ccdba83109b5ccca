"""The service's Prometheus metrics (``GET /metrics``), named in JupyterHub's style."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ..model.session import Session

_BUCKETS = (0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, float("inf"))


class _Sessions(Collector):
    """``clauderon_sessions``: the store's sessions by status, backend and the owner's group, read at scrape."""

    def __init__(self, sessions: Callable[[], Iterable[Session]]) -> None:
        self._sessions = sessions

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "clauderon_sessions", "Sessions by status, backend and owner group", labels=["status", "backend", "group"]
        )
        counts: Tally[tuple[str, str, str]] = Tally()
        for s in self._sessions():
            groups = s.runtime.get("groups")
            group = ",".join(sorted(g for g in groups if isinstance(g, str))) if isinstance(groups, list) else ""
            counts[(s.status.value, s.backend, group or "none")] += 1
        for labels, n in sorted(counts.items()):
            family.add_metric(list(labels), n)
        yield family


class Metrics:
    """Counters and histograms the handlers update; one registry per service."""

    def __init__(self, sessions: Callable[[], Iterable[Session]]) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_Sessions(sessions))
        self.creates = Counter(
            "clauderon_creates", "Session creates by result and reason", ["result", "reason"], registry=self.registry
        )
        self.create_duration = Histogram(
            "clauderon_create_duration_seconds",
            "Time to create a session, from the request to running",
            ["backend"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.pull_duration = Histogram(
            "clauderon_image_pull_duration_seconds",
            "Time spent pulling a session's image",
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.culls = Counter(
            "clauderon_culls",
            "Sessions stopped or deleted by the lifetime rules",
            ["action", "reason"],
            registry=self.registry,
        )
        self.creates_in_progress = Gauge(
            "clauderon_creates_in_progress",
            "Creates admitted and not yet ended (a user's count is capped: 429 beyond)",
            registry=self.registry,
        )
        self.quota_refusals = Counter(
            "clauderon_quota_refusals", "Creates and starts refused by a quota", ["quota"], registry=self.registry
        )

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class PullTimer:
    """Measures the pull step of one create from its progress events."""

    def __init__(self, observe: Callable[[float], Any], clock: Callable[[], float]) -> None:
        self._observe, self._clock = observe, clock
        self._started: float | None = None

    def __call__(self, step: str) -> None:
        if step == "pull" and self._started is None:
            self._started = self._clock()
        elif step != "pull" and self._started is not None:
            self._observe(self._clock() - self._started)
            self._started = None
