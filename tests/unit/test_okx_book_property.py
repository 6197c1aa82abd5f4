"""Random OKX book messages against a plain-dict reference: each message carries the
reference's checksum and a chained seqId, so the book must apply every one; one wrong
checksum or a skipped seqId must fail it."""

from __future__ import annotations

from zlib import crc32

from hypothesis import given
from hypothesis import strategies as st

from marketdata.events import Level
from marketdata.venues.okx.book_state import OkxBook, Outcome
from marketdata.venues.okx.wire import BookMessage

prices = st.integers(min_value=1, max_value=40)  # tenths; asks are 10.0 above the bids
qtys = st.integers(min_value=0, max_value=3)
side_updates = st.lists(st.tuples(prices, qtys), max_size=5)
snapshot_side = st.lists(st.tuples(prices, st.integers(1, 3)), min_size=1, max_size=35)


def as_levels(pairs: list[tuple[int, int]], offset: int) -> list[Level]:
    return [((p + offset) / 10, float(q), f"{(p + offset) / 10:g}", str(q)) for p, q in pairs]


def reference_checksum(bids: dict[int, int], asks: dict[int, int]) -> int:
    top_bids = sorted(bids.items(), reverse=True)[:25]
    top_asks = sorted(asks.items())[:25]
    parts: list[str] = []
    for i in range(max(len(top_bids), len(top_asks))):
        if i < len(top_bids):
            parts += [f"{top_bids[i][0] / 10:g}", str(top_bids[i][1])]
        if i < len(top_asks):
            parts += [f"{(top_asks[i][0] + 100) / 10:g}", str(top_asks[i][1])]
    value = crc32(":".join(parts).encode())
    return value - (1 << 32) if value >= 1 << 31 else value


def apply(side: dict[int, int], pairs: list[tuple[int, int]]) -> None:
    for price, qty in pairs:
        if qty:
            side[price] = qty
        else:
            side.pop(price, None)


@given(
    snapshot_side, snapshot_side, st.lists(st.tuples(side_updates, side_updates), max_size=30),
    st.integers(0, 31),
)  # fmt: skip
def test_the_book_follows_the_reference_and_fails_on_the_first_bad_message(
    snapshot_bids: list[tuple[int, int]],
    snapshot_asks: list[tuple[int, int]],
    updates: list[tuple[list[tuple[int, int]], list[tuple[int, int]]]],
    broken_at: int,
) -> None:
    bids: dict[int, int] = {}
    asks: dict[int, int] = {}
    apply(bids, snapshot_bids)
    apply(asks, snapshot_asks)
    book = OkxBook("X")
    snapshot = BookMessage(
        "X", True, as_levels(snapshot_bids, 0), as_levels(snapshot_asks, 100),
        reference_checksum(bids, asks) or 1, 100, -1, 0, 0.0,
    )  # fmt: skip
    if reference_checksum(bids, asks) == 0:
        return  # 0 means "no checksum": too rare to matter
    assert book.on_message(snapshot) is Outcome.APPLIED
    for i, (bid_pairs, ask_pairs) in enumerate(updates):
        apply(bids, bid_pairs)
        apply(asks, ask_pairs)
        checksum = reference_checksum(bids, asks)
        seq = 101 + i
        prev = seq - 1
        broken = i == broken_at
        if broken and i % 2:
            prev -= 1  # a message lost before this one
        elif broken:
            checksum = checksum + 1 if checksum < (1 << 31) - 1 else 1
        message = BookMessage(
            "X", False, as_levels(bid_pairs, 0), as_levels(ask_pairs, 100), checksum or 0,
            seq, prev, 0, 0.0,
        )  # fmt: skip
        outcome = book.on_message(message)
        if broken:
            assert outcome is (Outcome.GAP if i % 2 else Outcome.MISMATCH)
            assert not book.synced
            return
        assert outcome is Outcome.APPLIED
        assert book.last_id == seq
    assert book.book.top(400) == (
        [(f"{p / 10:g}", str(q)) for p, q in sorted(bids.items(), reverse=True)],
        [(f"{(p + 100) / 10:g}", str(q)) for p, q in sorted(asks.items())],
    )
