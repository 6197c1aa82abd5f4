"""CoinbaseBook against a plain dict model: any snapshot and updates, same levels."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from marketdata.events import Level
from marketdata.venues.coinbase.book_state import CoinbaseBook, Outcome
from marketdata.venues.coinbase.wire import BookEvent

_PRICES = st.integers(1, 40)  # in cents around 100: bids and asks may meet, and cross
_QTYS = st.sampled_from(["0", "1", "2.5", "0.001"])


def _level(cents: int, qty: str) -> Level:
    price = f"{100 + cents / 100:.2f}"
    return (float(price), float(qty), price, qty)


_SIDE = st.lists(st.tuples(_PRICES, _QTYS), max_size=8)
_EVENT = st.tuples(_SIDE, _SIDE)
# A snapshot lists each price once, with a quantity (none of the recording's 69,334 is 0).
_BOOK_SIDE = st.dictionaries(_PRICES, _QTYS.filter(lambda q: q != "0"), max_size=8).map(
    lambda levels: list(levels.items())
)
_SNAPSHOT = st.tuples(_BOOK_SIDE, _BOOK_SIDE)


@given(_SNAPSHOT, st.lists(_EVENT, max_size=12))
def test_the_book_holds_what_a_dict_model_holds(
    snapshot: tuple[list[tuple[int, str]], list[tuple[int, str]]],
    updates: list[tuple[list[tuple[int, str]], list[tuple[int, str]]]],
) -> None:
    book = CoinbaseBook("X-Y")
    model: dict[str, dict[float, str]] | None = None
    for i, (bids, asks) in enumerate([snapshot, *updates]):
        event = BookEvent("X-Y", i == 0, [_level(*b) for b in bids], [_level(*a) for a in asks],
                          i + 1, 1.0)  # fmt: skip
        if i == 0:
            model = {"bid": {}, "ask": {}}
        if model is None:
            assert book.on_event(event) is Outcome.WAITING
            continue
        for side, levels in (("bid", event.bids), ("ask", event.asks)):
            for price, qty, _, qty_text in levels:
                if qty == 0:
                    model[side].pop(price, None)
                else:
                    model[side][price] = qty_text
        crossed = bool(model["bid"] and model["ask"]) and max(model["bid"]) >= min(model["ask"])
        outcome = book.on_event(event)
        if crossed:
            assert outcome is Outcome.CROSSED
            assert not book.synced
            model = None
            continue
        assert outcome is Outcome.APPLIED
        bids_held, asks_held = book.book.top(100)
        assert bids_held == [(f"{p:.2f}", q) for p, q in sorted(model["bid"].items(), reverse=True)]
        assert asks_held == [(f"{p:.2f}", q) for p, q in sorted(model["ask"].items())]
