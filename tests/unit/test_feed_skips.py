"""Messages the feed skips are all counted, and logged at most once a second per symbol."""

from __future__ import annotations

import logging

import orjson
import pytest

from marketdata.metrics import Metrics
from tests.unit.test_top_audit import make_feeds


def test_messages_for_another_symbol_are_counted_and_logged_at_most_once_a_second(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics()
    feed = make_feeds(metrics)["CTKUSDT"]
    frame = orjson.dumps({"stream": "akrousdt@bookTicker", "data": {
        "e": "bookTicker", "u": 1, "s": "AKROUSDT", "b": "1", "B": "1", "a": "2", "A": "1",
        "T": 1, "E": 1,
    }})  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="marketdata"):
        for _ in range(1000):
            feed.on_frame(frame, 0.0)
    errors = metrics.registry.get_sample_value("messages_error_total", {"reason": "unknown_symbol"})
    assert errors == 1000
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1, lines[:3]
    assert "unexpected symbol 'AKROUSDT'" in lines[0]
    assert "binance_futures:CTKUSDT" in lines[0]
