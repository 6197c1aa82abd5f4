"""Scenario.hits: which symbol each gap, repeat and swap of a diff acted on, where the
dialect names a diff's symbol (OKX's instId, Bybit's topic)."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator

import orjson

from marketdata.sim.bybit_server import WIRE as BYBIT
from marketdata.sim.okx_server import WIRE as OKX
from marketdata.sim.scenarios import BINANCE, Scenario, Wire, faults


def _okx(inst_id: str, seq: int) -> bytes:
    data = [{"asks": [], "bids": [["1", "1", "0", "1"]], "prevSeqId": seq - 1, "seqId": seq}]
    return orjson.dumps(
        {"arg": {"channel": "books", "instId": inst_id}, "action": "update", "data": data}
    )


def _bybit(symbol: str, u: int) -> bytes:
    data = {"s": symbol, "b": [["1", "1"]], "a": [], "u": u, "seq": u}
    return orjson.dumps({"topic": f"orderbook.50.{symbol}", "type": "delta", "data": data})


async def _through(scenario: Scenario, wire: Wire, frames: list[bytes]) -> list[bytes]:
    async def source() -> AsyncIterator[bytes]:
        for frame in frames:
            yield frame

    sent = faults(scenario, source(), wire, lambda: (), lambda: True, wait=False)
    return [frame async for frame in sent]


async def test_okx_gaps_are_told_by_instrument() -> None:
    frames = [_okx(("BTC-USDT", "ETH-USDT")[i % 2], i) for i in range(1, 13)]
    scenario = Scenario(gap_every=3)
    sent = await _through(scenario, OKX, frames)
    assert len(sent) == 8
    # the 3rd, 6th, 9th and 12th diff are lost: ETH-USDT's, BTC-USDT's, ETH's, BTC's
    assert scenario.hits == Counter({("gap", "ETH-USDT"): 2, ("gap", "BTC-USDT"): 2})


async def test_bybit_repeats_and_swaps_are_told_by_symbol() -> None:
    frames = [_bybit("BTCUSDT", 1), _bybit("ETHUSDT", 2), _bybit("BTCUSDT", 3)]
    repeated = Scenario(duplicate_every=2)
    assert len(await _through(repeated, BYBIT, frames)) == 4
    assert repeated.hits == Counter({("duplicate", "ETHUSDT"): 1})
    swapped = Scenario(reorder_every=2)
    assert await _through(swapped, BYBIT, frames) == [frames[0], frames[2], frames[1]]
    assert swapped.hits == Counter({("reorder", "ETHUSDT"): 1, ("reorder", "BTCUSDT"): 1})


async def test_a_dialect_that_does_not_say_records_nothing() -> None:
    frames = [b'{"stream":"x","data":{"e":"depthUpdate"}}'] * 4
    scenario = Scenario(gap_every=2)
    assert len(await _through(scenario, BINANCE, frames)) == 2
    assert not scenario.hits
