"""The spot micro-benchmark: its looped frames keep the spot chain; the peer agrees."""

from __future__ import annotations

import orjson
import pytest

from bench import spot_core
from marketdata.venues.binance import BinanceSpot


def test_looped_frames_chain_consecutively_and_all_apply() -> None:
    snapshots, frames = spot_core.looped_spot_frames(1500)  # past two repetitions
    assert len(frames) == 1500
    last: dict[str, int] = {}
    for frame in frames:
        data = orjson.loads(frame)["data"]
        if data["s"] in last:
            assert data["U"] == last[data["s"]] + 1
        last[data["s"]] = data["u"]
    rate, tops = spot_core.core(snapshots, frames)  # raises unless every diff applied
    assert rate > 0
    assert set(tops) == set(snapshots)
    for bids, asks in tops.values():
        assert len(bids) == len(asks) == 20
        assert bids[0][0] < asks[0][0]
    adapter = BinanceSpot()
    assert all(adapter.parse(f, 0.0) for f in frames[:10])


def test_cryptofeed_peer_ends_with_our_books() -> None:
    pytest.importorskip("cryptofeed")
    snapshots, frames = spot_core.looped_spot_frames(1200)
    _, tops = spot_core.core(snapshots, frames)
    assert spot_core.cryptofeed(snapshots, frames, tops) > 0
    wrong = {s: (bids[1:], asks) for s, (bids, asks) in tops.items()}
    with pytest.raises(RuntimeError, match="differ from ours"):
        spot_core.cryptofeed(snapshots, frames, wrong)
