"""Exchange data cannot grow a book without bound: past the cap the book is rebuilt."""

from __future__ import annotations

import tracemalloc

from marketdata.book import DEFAULT_MAX_LEVELS
from marketdata.continuity import FuturesChain
from marketdata.events import BookSnapshot, DepthDiff, Level
from marketdata.sync import BookSync, Outcome, SyncState

L = 1_000


def bids(first: int, count: int) -> list[Level]:
    """`count` bid levels at distinct prices, all below the ask at 2000."""
    return [(p / 1000, 1.0, f"{p / 1000:.3f}", "1") for p in range(first, first + count)]


def synced(max_levels: int = DEFAULT_MAX_LEVELS) -> BookSync:
    sync = BookSync(FuturesChain(), max_levels=max_levels)
    snapshot = BookSnapshot("x", "S", L, bids(1, 1000), [(2000.0, 1.0, "2000", "1")], 0, 0.0)
    sync.on_snapshot(snapshot)
    assert sync.state is SyncState.BRIDGING
    return sync


def test_diffs_adding_levels_without_end_rebuild_the_book_at_the_cap() -> None:
    sync, last, outcomes, most = synced(), L, [], 0
    tracemalloc.start()
    for n in range(1, 1201):  # 1.2 M new bid levels, 1000 a diff, none ever removed
        diff = DepthDiff("x", "S", last + 1, last + 5, last, bids(1000 + n * 1000, 1000), [], 0, 0)
        last += 5
        outcomes.append(sync.on_diff(diff))
        most = max(most, max(sync.book.level_counts()))
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert outcomes[:5] == [Outcome.APPLIED] * 4 + [Outcome.TOO_DEEP]
    assert set(outcomes[5:]) == {Outcome.BUFFERED}  # waiting for a snapshot from now on
    assert most <= DEFAULT_MAX_LEVELS
    assert sync.book.level_counts() == (0, 0)  # released, not kept until the next snapshot
    # The diffs waiting for that snapshot are bounded too: 10 books' worth of levels.
    assert held < 16 * 1024 * 1024, held


def test_a_snapshot_deeper_than_the_cap_is_refused_and_the_buffer_kept() -> None:
    sync = BookSync(FuturesChain(), max_levels=500)
    waiting = DepthDiff("x", "S", L - 2, L + 3, L - 5, [], [], 0, 0.0)
    sync.on_diff(waiting)
    snapshot = BookSnapshot("x", "S", L, bids(1, 501), [(2000.0, 1.0, "2000", "1")], 0, 0.0)
    assert sync.on_snapshot(snapshot) == [Outcome.TOO_DEEP]
    assert sync.needs_snapshot
    assert sync.book.level_counts() == (0, 0)
    snapshot = BookSnapshot("x", "S", L, bids(1, 500), [(2000.0, 1.0, "2000", "1")], 0, 0.0)
    assert sync.on_snapshot(snapshot) == [Outcome.APPLIED]  # the kept diff bridges it


def test_levels_that_come_and_go_stay_under_the_cap() -> None:
    sync, last = synced(max_levels=1100), L
    for n in range(200):  # 100 levels in, the same 100 out: the book never grows
        qty = "1" if n % 2 == 0 else "0"
        levels = [(p / 1000, float(qty), f"{p / 1000:.3f}", qty) for p in range(1001, 1101)]
        assert sync.on_diff(DepthDiff("x", "S", last + 1, last + 2, last, levels, [], 0, 0)) is (
            Outcome.APPLIED
        )
        last += 2
    assert sync.book.level_counts() == (1000, 1)
