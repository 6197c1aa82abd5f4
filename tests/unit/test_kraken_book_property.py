"""Random Kraken book messages against a plain-dict reference that recomputes everything.

The book skips recomputing its checksum when no level of an update reaches its top 10;
here every message carries the checksum of the reference (which always recomputes, and
cuts to the depth as Kraken does), so a wrong skip shows up as a RESYNC, and a message
with any other checksum must resync.
"""

from __future__ import annotations

from zlib import crc32

from hypothesis import given, settings
from hypothesis import strategies as st

from marketdata.events import Level
from marketdata.venues.kraken.book_state import KrakenBook, Outcome
from marketdata.venues.kraken.wire import BookMessage, Precision

DEPTH = 10
# Few prices, so that books often hold more than 10 levels and updates often land on
# the 10th: the edge of the skip.
prices = st.integers(min_value=1, max_value=16)  # tenths: 0.1 .. 1.6; asks are 4.0 above
qtys = st.integers(min_value=0, max_value=3)
side_updates = st.lists(st.tuples(prices, qtys), max_size=4)
snapshot_side = st.lists(st.tuples(prices, st.integers(1, 3)), min_size=12, max_size=20)


def bid_levels(pairs: list[tuple[int, int]]) -> list[Level]:
    return [(p / 10, float(q), f"{p / 10:.1f}", str(q)) for p, q in pairs]


def ask_levels(pairs: list[tuple[int, int]]) -> list[Level]:
    return [((p + 40) / 10, float(q), f"{(p + 40) / 10:.1f}", str(q)) for p, q in pairs]


def reference_checksum(bids: dict[int, int], asks: dict[int, int]) -> int:
    """Prices in tenths at precision 1, quantities at precision 2 ("3" -> "300")."""
    text = "".join(f"{p + 40}{q}00" for p, q in sorted(asks.items())[:10])
    text += "".join(f"{p}{q}00" for p, q in sorted(bids.items(), reverse=True)[:10])
    return crc32(text.encode())


def apply(ref: dict[int, int], pairs: list[tuple[int, int]], reverse: bool) -> None:
    for p, q in pairs:
        if q == 0:
            ref.pop(p, None)
        else:
            ref[p] = q
    for p in sorted(ref, reverse=reverse)[DEPTH:]:  # Kraken keeps only the subscribed depth
        del ref[p]


@given(snapshot_side, snapshot_side, st.lists(st.tuples(side_updates, side_updates), max_size=30))
@settings(max_examples=300)
def test_every_message_with_the_right_checksum_applies(
    snap_bids: list[tuple[int, int]],
    snap_asks: list[tuple[int, int]],
    updates: list[tuple[list[tuple[int, int]], list[tuple[int, int]]]],
) -> None:
    book = KrakenBook("X/Y", DEPTH, Precision(1, 2))
    ref_bids: dict[int, int] = {}
    ref_asks: dict[int, int] = {}
    apply(ref_bids, snap_bids, reverse=True)
    apply(ref_asks, snap_asks, reverse=False)
    snapshot = BookMessage("X/Y", True, bid_levels(snap_bids), ask_levels(snap_asks), 0, 0, 0.0)
    # a snapshot carries each price once; later entries win, as in the reference
    snapshot.bids = bid_levels(list(dict(snap_bids).items()))
    snapshot.asks = ask_levels(list(dict(snap_asks).items()))
    snapshot.checksum = reference_checksum(ref_bids, ref_asks)
    assert book.on_message(snapshot) is Outcome.APPLIED
    for bids, asks in updates:
        apply(ref_bids, bids, reverse=True)
        apply(ref_asks, asks, reverse=False)
        right = reference_checksum(ref_bids, ref_asks)
        message = BookMessage("X/Y", False, bid_levels(bids), ask_levels(asks), right, 0, 0.0)
        assert book.on_message(message) is Outcome.APPLIED
    wrong = BookMessage("X/Y", False, [], [], reference_checksum(ref_bids, ref_asks) ^ 1, 0, 0.0)
    assert book.on_message(wrong) is Outcome.RESYNC
