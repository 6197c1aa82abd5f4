"""The README documents every metric the service and persist expose."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from marketdata.metrics import Metrics, PersistMetrics

README = (Path(__file__).parents[2] / "README.md").read_text()


def _names(registry: CollectorRegistry) -> list[str]:
    suffix = {"counter": "_total"}
    return sorted(m.name + suffix.get(m.type, "") for m in registry.collect())


@pytest.mark.parametrize("instruments", [Metrics, PersistMetrics])
def test_every_metric_is_documented(instruments):
    names = _names(instruments().registry)
    assert names, "no metric found: the test would pass vacuously"
    assert [n for n in names if f"`{n}" not in README] == []
