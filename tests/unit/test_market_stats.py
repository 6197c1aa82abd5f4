from __future__ import annotations

from marketdata.events import Trade
from marketdata.market_stats import RollingTradeStats
from marketdata.messages import market_data_message

MINUTE = 60_000
DAY = 24 * 60 * MINUTE


def trade(price: str, qty: str, ts: int, trade_id: int = 1) -> Trade:
    return Trade("x", "S", trade_id, float(price), float(qty), price, qty, "buy", ts, ts / 1000)


def test_window_sums_exactly_and_keeps_price_text() -> None:
    stats = RollingTradeStats()
    for i, (p, q) in enumerate([("7.6110", "0.1"), ("7.6200", "0.2"), ("7.5000", "0.3")]):
        stats.add(trade(p, q, 1_000 + i * MINUTE))
    window = stats.window()
    assert window is not None
    assert (window.volume, window.high, window.low, window.trades) == ("0.6", "7.6200", "7.5000", 3)
    assert stats.last_price == "7.5000"


def test_old_trades_leave_the_window() -> None:
    stats = RollingTradeStats()
    stats.add(trade("100", "5", 0))
    stats.add(trade("50", "1", 10 * MINUTE))
    stats.add(trade("70", "2", DAY + 5 * MINUTE))  # the first minute is now > 24 h old
    window = stats.window()
    assert window is not None
    assert (window.volume, window.high, window.low, window.trades) == ("3", "70", "50", 2)
    assert window.since_ms == 10 * MINUTE


def test_market_data_mid_and_spread_are_exact_decimals() -> None:
    message = market_data_message(
        "x", "S", ("0.1", "1"), ("0.3", "2"), None, None, None, 123
    ).decode()
    assert '"mid":"0.2"' in message
    assert '"spread":"0.2"' in message
