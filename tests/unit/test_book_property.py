"""Random diff sequences: the synced book equals a plain-dict reference and is never crossed."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from marketdata.book import OrderBook
from marketdata.continuity import FuturesChain
from marketdata.events import BookSnapshot, DepthDiff, Level
from marketdata.sync import BookSync, Outcome

prices = st.integers(min_value=1, max_value=60)
qtys = st.integers(min_value=0, max_value=5)
updates = st.lists(st.tuples(prices, qtys), max_size=8)


def levels(pairs: list[tuple[int, int]]) -> list[Level]:
    return [(p / 10, float(q), f"{p / 10:.1f}", str(q)) for p, q in pairs]


def reference_top(ref: dict[int, int], reverse: bool) -> list[tuple[str, str]]:
    return [(f"{p / 10:.1f}", str(ref[p])) for p in sorted(ref, reverse=reverse)]


@given(st.lists(st.tuples(updates, updates), max_size=40))
@settings(max_examples=300)
def test_book_apply_matches_dict_reference(diffs) -> None:
    book, ref_bids, ref_asks = OrderBook(), {}, {}
    for bids, asks in diffs:
        book.apply(levels(bids), levels(asks))
        for ref, side in ((ref_bids, bids), (ref_asks, asks)):
            for p, q in side:
                if q == 0:
                    ref.pop(p, None)
                else:
                    ref[p] = q
    top_bids, top_asks = book.top(1000)
    assert top_bids == reference_top(ref_bids, reverse=True)
    assert top_asks == reference_top(ref_asks, reverse=False)


@given(
    snapshot_bids=st.lists(st.tuples(st.integers(1, 29), st.integers(1, 5)), max_size=10),
    snapshot_asks=st.lists(st.tuples(st.integers(31, 60), st.integers(1, 5)), max_size=10),
    diffs=st.lists(st.tuples(updates, updates, st.booleans()), max_size=40),
)
@settings(max_examples=300)
def test_synced_book_is_never_crossed_and_matches_reference(
    snapshot_bids, snapshot_asks, diffs
) -> None:
    sync = BookSync(FuturesChain())
    ref_bids, ref_asks = dict(snapshot_bids), dict(snapshot_asks)
    prev = 100
    sync.on_diff(diff(prev - 5, prev, 90, [], []))  # buffered, bridges the snapshot at 100
    sync.on_snapshot(
        BookSnapshot("x", "S", 100, levels(snapshot_bids), levels(snapshot_asks), 0, 0.0)
    )
    assert sync.synced
    for bids, asks, chained in diffs:
        pu = prev if chained else prev + 1  # an unchained diff is a gap
        outcome = sync.on_diff(diff(prev + 2, prev + 3, pu, bids, asks))
        prev += 3
        if outcome is Outcome.APPLIED:
            for ref, side in ((ref_bids, bids), (ref_asks, asks)):
                for p, q in side:
                    ref.pop(p, None) if q == 0 else ref.__setitem__(p, q)
            assert not sync.book.is_crossed()
            top_bids, top_asks = sync.book.top(1000)
            assert top_bids == reference_top(ref_bids, reverse=True)
            assert top_asks == reference_top(ref_asks, reverse=False)
        else:
            assert not sync.synced
            assert outcome in (Outcome.GAP, Outcome.CROSSED, Outcome.BUFFERED)
            assert outcome is not Outcome.GAP or not chained
            return  # the book is discarded; nothing further to compare


def diff(first: int, last: int, prev: int, bids, asks) -> DepthDiff:
    return DepthDiff("x", "S", first, last, prev, levels(bids), levels(asks), 0, 0.0)
