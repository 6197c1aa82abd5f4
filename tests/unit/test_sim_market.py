from __future__ import annotations

import orjson

from marketdata.continuity import FuturesChain
from marketdata.sim.market import SimMarket
from marketdata.sync import BookSync, Outcome
from marketdata.venues.binance import BinanceFutures


def test_generated_diffs_chain_like_futures_and_rebuild_the_true_book() -> None:
    market = SimMarket("BTCUSDT", seed=7)
    adapter = BinanceFutures()
    sync = BookSync(FuturesChain())
    gaps_between_ids = 0
    prev_u = None
    for i in range(2000):
        frames = market.step(i)
        depth = frames.depth
        if prev_u is not None:
            assert depth["pu"] == prev_u
            gaps_between_ids += depth["U"] != prev_u + 1
        prev_u = depth["u"]
        (diff,) = adapter.parse(orjson.dumps({"stream": "btcusdt@depth", "data": depth}), 0.0)
        outcome = sync.on_diff(diff)
        if i == 10:
            snap = orjson.dumps(market.snapshot(1000))
            sync.on_snapshot(adapter.parse_snapshot("BTCUSDT", snap, 0.0))
            assert sync.synced
        elif i > 10:
            assert outcome is Outcome.APPLIED
    assert gaps_between_ids > 1500  # ids jump like real futures ids
    bids, asks = sync.book.top(20)
    true_bids, true_asks = market.top(20)
    assert [list(b) for b in bids] == true_bids
    assert [list(a) for a in asks] == true_asks
    assert float(true_bids[0][0]) < float(true_asks[0][0])
