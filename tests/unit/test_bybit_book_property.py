"""Random Bybit book messages against a plain-dict reference.

Prices keep bids at 1..20 and asks at 21..40 so that no book is crossed; each delta's `u`
either follows (u + 1) or not, and the book must report a gap exactly when it does not,
then wait for a snapshot.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from marketdata.events import Level
from marketdata.venues.bybit.book_state import BybitBook, Outcome
from marketdata.venues.bybit.wire import BookMessage

sizes = st.integers(min_value=0, max_value=3)
side = st.lists(st.tuples(st.integers(1, 20), sizes), max_size=6)
steps = st.lists(st.tuples(side, side, st.sampled_from([1, 1, 1, 1, 0, 2, -3])), max_size=40)


def levels(pairs: list[tuple[int, int]], offset: int) -> list[Level]:
    return [(float(p + offset), float(q), str(p + offset), str(q)) for p, q in pairs]


def apply(ref: dict[int, int], pairs: list[tuple[int, int]]) -> None:
    for price, size in pairs:
        if size:
            ref[price] = size
        else:
            ref.pop(price, None)


@given(side, side, steps)
@settings(max_examples=300)
def test_the_book_matches_the_reference_and_finds_every_break(
    snap_bids: list[tuple[int, int]],
    snap_asks: list[tuple[int, int]],
    deltas: list[tuple[list[tuple[int, int]], list[tuple[int, int]], int]],
) -> None:
    book = BybitBook("X")
    bids = {p: q for p, q in snap_bids if q}
    asks = {p: q for p, q in snap_asks if q}
    snapshot = BookMessage("X", True, levels(list(bids.items()), 0),
                           levels(list(asks.items()), 20), 100, 0, 0, 0.0)  # fmt: skip
    assert book.on_message(snapshot) is Outcome.SNAPSHOT
    u, synced = 100, True
    for delta_bids, delta_asks, step in deltas:
        u += step
        message = BookMessage("X", False, levels(delta_bids, 0), levels(delta_asks, 20), u,
                              0, 0, 0.0)  # fmt: skip
        outcome = book.on_message(message)
        if not synced:
            assert outcome is Outcome.WAITING
        elif step == 1:
            assert outcome is Outcome.APPLIED
            apply(bids, delta_bids)
            apply(asks, delta_asks)
        else:
            assert outcome is Outcome.GAP
            synced = False
        assert book.synced is synced
        if synced:
            expected = (
                [(str(p), str(q)) for p, q in sorted(bids.items(), reverse=True)],
                [(str(p + 20), str(q)) for p, q in sorted(asks.items())],
            )
            assert book.book.top(100) == expected
            assert book.last_id == u
