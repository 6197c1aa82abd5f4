"""A book subscription's view follows the generated market exactly, by Kraken's rules."""

from __future__ import annotations

from zlib import crc32

import pytest

from marketdata.events import Level
from marketdata.sim.kraken_book import BookView, Levels, plain
from marketdata.sim.kraken_market import PAIRS
from marketdata.sim.market import SimMarket, fixed
from marketdata.venues.kraken import KrakenBook, Outcome, Precision, book_checksum
from marketdata.venues.kraken.wire import BookMessage


def market(symbol: str = "BTC/USD") -> SimMarket:
    return SimMarket(symbol, seed=9, shape=PAIRS[symbol].shape)


def top(m: SimMarket, depth: int) -> tuple[Levels, Levels]:
    bids = list(reversed(m.bids.items()[-depth:]))
    return bids, list(m.asks.items()[:depth])


def message(m: SimMarket, bids: Levels, asks: Levels, checksum: int, snapshot: bool) -> BookMessage:
    """What the client's parser makes of the frame (numbers as Kraken spells them)."""

    def levels(side: Levels) -> list[Level]:
        out = []
        for ticks, lots in side:
            price, qty = plain(fixed(ticks, m.price_dp)), plain(fixed(lots, m.qty_dp))
            out.append((float(price), float(qty), price, qty))
        return out

    return BookMessage(m.symbol, snapshot, levels(bids), levels(asks), checksum, 0, 0.0)


@pytest.mark.parametrize("depth", [10, 25, 1000])
def test_each_update_leaves_the_client_book_at_the_market_top_with_its_checksum(depth):
    m = market()
    view = BookView(depth)
    client = KrakenBook(m.symbol, depth, Precision(m.price_dp, m.qty_dp))
    bids, asks = view.snapshot(m)
    assert client.on_message(message(m, bids, asks, view.checksum(), True)) is Outcome.APPLIED
    pushed_out = 0
    for i in range(3000):
        step = m.step(i)
        bids, asks = view.update(m, step.changed)
        assert (view.levels("b"), view.levels("a")) == top(m, depth)
        if bids or asks:
            outcome = client.on_message(message(m, bids, asks, view.checksum(), False))
            assert outcome is Outcome.APPLIED, i
        worst = view.levels("b")[-1][0]
        pushed_out += sum(1 for t, q in bids if q and t < worst)
        # qty 0 only for a level that left the book, never for one pushed out of range
        assert all(t not in m.bids for t, q in bids if not q)
        assert all(t not in m.asks for t, q in asks if not q)
    want_bids, want_asks = top(m, depth)
    assert [lv[2] for lv in client.book.best_bids(depth)] == [
        plain(fixed(t, m.price_dp)) for t, _ in want_bids
    ]
    assert len(client.book.best_asks(depth)) == len(want_asks)
    if depth == 10:
        assert pushed_out > 0  # levels were sent that fell out of range: no delete followed


def test_catching_up_after_many_steps_sends_one_update_that_applies():
    m = market("ETH/USD")
    view = BookView(25)
    client = KrakenBook(m.symbol, 25, Precision(m.price_dp, m.qty_dp))
    bids, asks = view.snapshot(m)
    client.on_message(message(m, bids, asks, view.checksum(), True))
    for i in range(200):
        m.step(i)
    bids, asks = view.catch_up(m)
    assert (view.levels("b"), view.levels("a")) == top(m, 25)
    assert any(qty == 0 for _, qty in bids + asks)  # levels that left the book
    assert client.on_message(message(m, bids, asks, view.checksum(), False)) is Outcome.APPLIED


def test_the_checksum_is_kraken_s_crc32_of_the_rendered_top_ten():
    m = market("DOGE/USD")
    view = BookView(10)
    bids, asks = view.snapshot(m)
    rendered = [
        [(fixed(t, m.price_dp), fixed(q, m.qty_dp)) for t, q in side] for side in (asks, bids)
    ]
    assert view.checksum() == book_checksum(rendered[0], rendered[1], m.price_dp, m.qty_dp)
    text = "".join(f"{t}{q}" for side in (asks, bids) for t, q in side)
    assert view.checksum() == crc32(text.encode())


def test_numbers_drop_trailing_zeros_as_kraken_writes_them():
    assert [plain(t) for t in ("0.56600000", "60000.0", "0.00000000", "12", "0.5")] == [
        "0.566", "60000", "0", "12", "0.5",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="depth 7"):
        BookView(7)
