"""The generated market remembers its recent trades for GET /fapi/v1/aggTrades."""

from __future__ import annotations

from marketdata.sim.market import SimMarket


def streamed_trades(market: SimMarket, steps: int) -> list[dict]:
    trades = []
    for i in range(steps):
        frames = market.step(1_000 + i)
        if frames.trade is not None:
            trades.append(frames.trade)
    return trades


def test_pages_match_what_was_streamed_and_memory_is_bounded() -> None:
    market = SimMarket("BTCUSDT", seed=5)
    market.recent_trades = type(market.recent_trades)(maxlen=50)
    trades = streamed_trades(market, 1_000)
    rest = [{k: t[k] for k in ("a", "p", "q", "f", "l", "T", "m")} for t in trades]
    assert len(trades) > 100
    assert market.agg_trades(rest[-20]["a"], 5) == rest[-20:-15]
    assert market.agg_trades(None, 3) == rest[-3:]
    assert market.agg_trades(rest[0]["a"], 1000) == rest[-50:]  # only the last 50 are kept
    assert market.agg_trades(rest[-1]["a"] + 1, 10) == []
