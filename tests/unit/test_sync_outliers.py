"""Diffs whose ids are out of line: refused by the parser when implausible, skipped or
treated as a break by the sync, never able to freeze a book that still says it is synced."""

from __future__ import annotations

import pytest

from marketdata.continuity import FuturesChain
from marketdata.events import BookSnapshot, DepthDiff, Level
from marketdata.sync import BookSync, Outcome, SyncState
from marketdata.venues.base import MAX_ID
from marketdata.venues.binance import BinanceFutures, MalformedMessage

L = 600_859_605_926  # a real snapshot id from the capture
FAR = L + 10**12  # in range for the parser, yet far past anything the stream will reach
BID: list[Level] = [(1.0, 1.0, "1.0", "1")]
ASK: list[Level] = [(2.0, 1.0, "2.0", "1")]


def depth_frame(first: int, last: int, prev: int) -> bytes:
    return (
        b'{"stream":"x@depth@100ms","data":{"e":"depthUpdate","E":1,"T":1,"s":"SUSHIUSDT",'
        b'"U":%d,"u":%d,"pu":%d,"b":[],"a":[]}}' % (first, last, prev)
    )


def diff(first: int, last: int, prev: int, bids: list[Level] | None = None) -> DepthDiff:
    return DepthDiff("x", "S", first, last, prev, bids or [], [], 0, 0.0)


def snapshot(last_id: int = L) -> BookSnapshot:
    return BookSnapshot("x", "S", last_id, BID, ASK, 0, 0.0)


@pytest.mark.parametrize(
    ("first", "last", "prev"),
    [
        (L + 1, 2**62, L),  # valid pu, u far out of range
        (2**62, 2**62, L),
        (MAX_ID, MAX_ID, L),
        (0, 5, 0),  # ids start at 1
        (L + 1, L + 5, L + 1),  # pu is the previous event's u: it must come before U
        (L + 1, L + 5, -1),
    ],
)
def test_parser_refuses_implausible_ids(first: int, last: int, prev: int) -> None:
    with pytest.raises(MalformedMessage) as info:
        BinanceFutures().parse(depth_frame(first, last, prev), 0.0)
    assert info.value.reason == "bad_ids"


def test_parser_refuses_implausible_snapshot_and_ticker_ids() -> None:
    adapter = BinanceFutures()
    body = b'{"lastUpdateId":%d,"E":1,"bids":[],"asks":[]}' % 2**62
    with pytest.raises(MalformedMessage, match="bad_ids"):
        adapter.parse_snapshot("SUSHIUSDT", body, 0.0)
    ticker = (
        b'{"stream":"x@bookTicker","data":{"e":"bookTicker","u":%d,"s":"SUSHIUSDT",'
        b'"b":"7.6110","B":"2","a":"7.6120","A":"297","T":1,"E":2}}' % 2**62
    )
    with pytest.raises(MalformedMessage, match="bad_ids"):
        adapter.parse(ticker, 0.0)


def test_the_largest_plausible_id_still_parses() -> None:
    (event,) = BinanceFutures().parse(depth_frame(L + 1, MAX_ID - 1, L), 0.0)
    assert isinstance(event, DepthDiff)
    assert event.last_id == MAX_ID - 1


def synced_at(last_id: int) -> BookSync:
    sync = BookSync(FuturesChain())
    sync.on_snapshot(snapshot(last_id))
    assert sync.on_diff(diff(last_id - 2, last_id + 3, last_id - 5)) is Outcome.APPLIED
    return sync


def test_an_applied_far_future_id_breaks_the_chain_at_the_next_real_diff() -> None:
    sync = synced_at(L)
    assert sync.on_diff(diff(L + 4, FAR, L + 3)) is Outcome.APPLIED  # chains on a valid pu
    # The next real diff chains on L + 6, not on FAR: the book cannot go on as "synced".
    assert sync.on_diff(diff(L + 7, L + 9, L + 6)) is Outcome.GAP
    assert not sync.synced


def test_an_exact_repeat_of_the_last_diff_is_dropped_and_the_chain_goes_on() -> None:
    sync = synced_at(L)
    assert sync.on_diff(diff(L + 4, L + 6, L + 3)) is Outcome.APPLIED
    assert sync.on_diff(diff(L + 4, L + 6, L + 3)) is Outcome.DROPPED
    assert sync.on_diff(diff(L + 7, L + 9, L + 6)) is Outcome.APPLIED


def test_a_repeat_of_an_earlier_diff_is_dropped_as_after_a_connection_handover() -> None:
    sync = synced_at(L)
    assert sync.on_diff(diff(L + 4, L + 6, L + 3)) is Outcome.APPLIED
    assert sync.on_diff(diff(L - 2, L + 3, L - 5)) is Outcome.DROPPED
    assert sync.on_diff(diff(L - 9, L - 6, L - 12)) is Outcome.DROPPED  # stale for the snapshot
    assert sync.on_diff(diff(L + 4, L + 6, L + 3)) is Outcome.DROPPED
    assert sync.on_diff(diff(L + 7, L + 9, L + 6)) is Outcome.APPLIED


def test_an_older_id_the_book_never_applied_is_a_gap() -> None:
    sync = synced_at(L)
    assert sync.on_diff(diff(L + 4, L + 9, L + 3)) is Outcome.APPLIED
    assert sync.on_diff(diff(L + 5, L + 7, L + 4)) is Outcome.GAP


def test_an_outlier_at_the_head_of_the_buffer_is_skipped_and_the_bridge_applied() -> None:
    sync = BookSync(FuturesChain())
    sync.on_diff(diff(FAR, FAR, L - 9))  # no snapshot can bridge this one
    sync.on_diff(diff(L - 8, L - 3, L - 9))  # stale
    sync.on_diff(diff(L - 2, L + 3, L - 3, bids=[(1.5, 2.0, "1.5", "2")]))  # bridges L
    sync.on_diff(diff(L + 4, L + 6, L + 3))
    outcomes = sync.on_snapshot(snapshot())
    assert outcomes == [Outcome.OUTLIER, Outcome.DROPPED, Outcome.APPLIED, Outcome.APPLIED]
    assert sync.state is SyncState.SYNCED
    assert sync.last_id == L + 6
    assert sync.book.best_bid() == ("1.5", "2")


def test_an_outlier_before_stale_diffs_only_leaves_the_snapshot_waiting_for_its_bridge() -> None:
    sync = BookSync(FuturesChain())
    sync.on_diff(diff(FAR, FAR, L - 9))
    sync.on_diff(diff(L - 8, L - 3, L - 9))  # stale, yet after the outlier
    assert sync.on_snapshot(snapshot()) == [Outcome.OUTLIER, Outcome.DROPPED]
    assert sync.state is SyncState.BRIDGING
    assert sync.on_diff(diff(L - 2, L + 3, L - 3)) is Outcome.APPLIED


def test_kept_diffs_that_all_start_after_the_snapshot_still_mean_it_is_too_old() -> None:
    sync = BookSync(FuturesChain())
    sync.on_diff(diff(L - 8, L - 3, L - 9))  # stale
    sync.on_diff(diff(L + 5, L + 9, L + 2))  # starts after L: the snapshot missed L+1..L+4
    sync.on_diff(diff(L + 10, L + 12, L + 9))
    outcomes = sync.on_snapshot(snapshot())
    assert outcomes == [Outcome.DROPPED, Outcome.SNAPSHOT_TOO_OLD]
    assert sync.needs_snapshot
    # Both kept for the next snapshot, which the first of them bridges.
    assert sync.on_snapshot(snapshot(L + 7)) == [Outcome.APPLIED, Outcome.APPLIED]
    assert sync.last_id == L + 12
