"""Generated OKX spot markets: one SimMarket per instrument with OKX's tick and lot sizes,
and each book's `seqId`.

The markets are made and stepped as Kraken's are (kraken_market.KrakenSource: started on
first use, each step handed at once to every listener of the instrument); this source adds
OKX's instruments and one `seqId` per book, advanced by an irregular amount on every step
before the listeners hear of it, so every connection and the REST snapshot agree on it.
`checksums=False` sends every `checksum` as 0, as OKX has done in production since
2026-06-23.
"""

from __future__ import annotations

import zlib
from collections.abc import Collection

from marketdata.sim.kraken_market import KrakenSource, Pair
from marketdata.sim.market import Shape, SimMarket, StepFrames

FIRST_SEQ_ID = 1_000_000  # each book's seqId starts a little above this


def _instrument(inst_id: str, price: float, price_dp: int, qty_dp: int) -> Pair:
    return Pair(inst_id, Shape(price, price_dp, qty_dp, min(1.0, 500 / price)), "0")


# OKX's own tick sizes (tickSz) and lot sizes (lotSz) for some of its busiest spot pairs.
INSTRUMENTS = {
    p.symbol: p
    for p in (
        _instrument("BTC-USDT", 60000.0, 1, 8),
        _instrument("ETH-USDT", 3000.0, 2, 6),
        _instrument("SOL-USDT", 150.0, 2, 6),
        _instrument("XRP-USDT", 0.6, 4, 6),
        _instrument("DOGE-USDT", 0.15, 5, 6),
        _instrument("OKB-USDT", 45.0, 3, 6),
        _instrument("BTC-USDC", 60000.0, 1, 8),
    )
}
DEFAULT_INSTRUMENTS = tuple(INSTRUMENTS)


def instrument_for(inst_id: str) -> Pair:
    """The instrument of an id this simulator lists (a made-up shape if it has no entry)."""
    return INSTRUMENTS.get(inst_id) or _instrument(inst_id, 10.0, 4, 6)


class OkxSource(KrakenSource):
    """The instruments a generated OKX lists; their markets start on first use."""

    def __init__(
        self,
        rate: float,
        seed: int | None = None,
        symbols: Collection[str] | None = None,
        checksums: bool = True,
    ) -> None:
        super().__init__(rate, seed, ())
        listed = DEFAULT_INSTRUMENTS if symbols is None else symbols
        self.pairs = {s: instrument_for(s) for s in listed}
        self.checksums = checksums  # False: every checksum is 0, as in production now
        self.seq: dict[str, int] = {}  # instId -> its book's seqId

    def market(self, symbol: str) -> SimMarket:
        if symbol not in self.seq:
            self.seq[symbol] = FIRST_SEQ_ID + zlib.crc32(symbol.encode()) % 100_000
        return super().market(symbol)

    def _stepped(self, market: SimMarket, frames: StepFrames) -> None:
        self.seq[market.symbol] += 1 + market.last_id % 5  # OKX's seqIds skip numbers
        super()._stepped(market, frames)
