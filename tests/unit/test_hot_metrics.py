"""The lock-free instruments expose exactly what prometheus_client's own would."""

from __future__ import annotations

import random

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from marketdata.hot_metrics import HotCounter, HotHistogram
from marketdata.metrics import FAST_BUCKETS


def test_exposition_matches_prometheus_client() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    hot_count = HotCounter("events", "Events by kind", ("kind",), ours)
    hot_plain = HotCounter("plain", "Unlabelled", (), ours)
    hot_hist = HotHistogram("latency_seconds", "Latency", ("kind",), ours, FAST_BUCKETS)
    ref_count = Counter("events", "Events by kind", ("kind",), registry=theirs)
    ref_plain = Counter("plain", "Unlabelled", registry=theirs)
    ref_hist = Histogram("latency_seconds", "Latency", ("kind",), buckets=FAST_BUCKETS,
                         registry=theirs)  # fmt: skip
    rng = random.Random(7)
    values = [*FAST_BUCKETS, 0.0, 2.0, *(rng.expovariate(500) for _ in range(2000))]
    for i, value in enumerate(values):
        kind = ("depth", "trade")[i % 2]
        hot_count.labels(kind).inc()
        ref_count.labels(kind).inc()
        hot_hist.labels(kind).observe(value)
        ref_hist.labels(kind).observe(value)
    hot_plain.inc(3)
    ref_plain.inc(3)

    def lines(registry: CollectorRegistry) -> list[str]:
        return sorted(generate_latest(registry).decode().splitlines())

    assert lines(ours) == lines(theirs)
    assert ours.get_sample_value("events_total", {"kind": "depth"}) == len(values) / 2
    assert ours.get_sample_value("latency_seconds_bucket", {"kind": "trade", "le": "+Inf"}) == (
        len(values) / 2
    )


def test_wrong_label_count_names_the_metric() -> None:
    counter = HotCounter("events", "Events by kind", ("kind",), CollectorRegistry())
    with pytest.raises(ValueError, match="events takes labels"):
        counter.labels("depth", "extra")


def test_duplicate_name_is_refused_like_prometheus_client() -> None:
    registry = CollectorRegistry()
    HotCounter("events", "Events", (), registry)
    with pytest.raises(ValueError, match="Duplicated"):
        Counter("events", "Events", registry=registry)
