"""OkxBook on the real recording through the real parser (every checksum), a corrupted level
(exactly that instrument fails), and the REST-snapshot procedure on seqId frames."""

from __future__ import annotations

import json
from typing import Any

import pytest

from marketdata.venues.okx.book_state import OkxBook, Outcome, SnapshotOutcome
from marketdata.venues.okx.checksum import book_checksum
from marketdata.venues.okx.wire import BookMessage, RestBook, levels, parse
from tests.okx_capture import INSTRUMENTS, OkxCapture, load


@pytest.fixture(scope="module")
def capture() -> OkxCapture:
    return load()


def replay(frames: list[bytes]) -> tuple[dict[str, OkxBook], dict[str, list[Outcome]]]:
    books = {inst: OkxBook(inst) for inst in INSTRUMENTS}
    outcomes: dict[str, list[Outcome]] = {inst: [] for inst in INSTRUMENTS}
    for frame in frames:
        for event in parse(frame, 1.0):
            if isinstance(event, BookMessage):
                outcomes[event.inst_id].append(books[event.inst_id].on_message(event))
    return books, outcomes


def test_every_checksum_of_the_recording_verifies(capture: OkxCapture) -> None:
    books, outcomes = replay(capture.book_frames)
    assert sum(len(o) for o in outcomes.values()) == 290
    assert {inst: len(o) for inst, o in outcomes.items()} == {
        "BTC-USD-220527": 99, "BTC-USDT": 98, "UNI-USD-SWAP": 93,
    }  # fmt: skip
    assert all(o == Outcome.APPLIED for out in outcomes.values() for o in out)
    for book in books.values():
        assert book.synced
        assert not book.book.is_crossed()
        assert book.last_id is None  # the 2022 feed had no seqId
        assert max(book.book.level_counts()) <= 400


def corrupt_top_level(capture: OkxCapture, inst: str) -> tuple[list[bytes], int]:
    """The book frames with one level of `inst`'s first update that reaches the top 25
    changed in size; the index of that frame."""
    frames = list(capture.book_frames)
    for i, frame in enumerate(frames):
        message = json.loads(frame)
        if message["arg"]["instId"] != inst or message["action"] != "update":
            continue
        data = message["data"][0]
        if data["bids"]:
            data["bids"][0][1] = data["bids"][0][1] + "1" if data["bids"][0][1] != "0" else "7"
            frames[i] = json.dumps(message).encode()
            return frames, i
    raise AssertionError(f"no update of {inst}")


@pytest.mark.parametrize("inst", INSTRUMENTS)
def test_one_corrupted_level_fails_that_instrument_only(capture: OkxCapture, inst: str) -> None:
    frames, index = corrupt_top_level(capture, inst)
    books, outcomes = replay(frames)
    failed = {i: [o for o in out if o is not Outcome.APPLIED] for i, out in outcomes.items()}
    position = sum(1 for f in frames[:index] if inst.encode() in f)  # its book messages
    assert outcomes[inst][position] is Outcome.MISMATCH  # failed on the corrupted message
    assert failed[inst][0] is Outcome.MISMATCH
    assert failed[inst].count(Outcome.MISMATCH) == 1  # then no book until a new snapshot
    assert all(o is Outcome.WAITING for o in failed[inst][1:])
    assert {i: f for i, f in failed.items() if i != inst} == {
        i: [] for i in INSTRUMENTS if i != inst
    }
    assert not books[inst].synced
    assert books[inst].book.level_counts() == (0, 0)


def test_checksum_interleaves_and_appends_the_longer_side() -> None:
    bids = levels([["3", "1"], ["2", "1"], ["1", "1"]], "X", "bids")
    asks = levels([["4", "2"]], "X", "asks")
    from zlib import crc32

    expected = crc32(b"3:1:4:2:2:1:1:1")
    assert book_checksum(bids, asks) == (expected - (1 << 32) if expected >= 1 << 31 else expected)
    assert book_checksum([], []) == 0


# -- seqId chain and the REST procedure, on synthetic frames --------------------------------


def update(seq: int, prev: int, bids: list[list[str]] | None = None, checksum: int = 0) -> Any:
    data = {"asks": [], "bids": bids or [["100", "1", "0", "1"]], "ts": "1000",
            "checksum": checksum, "seqId": seq, "prevSeqId": prev}  # fmt: skip
    frame = {"arg": {"channel": "books", "instId": "BTC-USDT"}, "action": "update", "data": [data]}
    (message,) = parse(json.dumps(frame), 1.0)
    assert isinstance(message, BookMessage)
    return message


def snapshot_frame(seq: int) -> BookMessage:
    data = {"asks": [["101", "2", "0", "1"]], "bids": [["99", "3", "0", "1"]], "ts": "900",
            "checksum": 0, "seqId": seq, "prevSeqId": -1}  # fmt: skip
    frame = {"arg": {"channel": "books", "instId": "BTC-USDT"}, "action": "snapshot",
             "data": [data]}  # fmt: skip
    (message,) = parse(json.dumps(frame), 1.0)
    assert isinstance(message, BookMessage)
    return message


def rest(seq: int) -> RestBook:
    bids, asks = (
        levels([["99", "3", "0", "1"]], "X", "b"),
        levels([["101", "2", "0", "1"]], "X", "a"),
    )
    return RestBook("BTC-USDT", bids, asks, seq, 900, 1.0)


def test_in_band_chains_on_prev_seq_id_and_a_break_resyncs() -> None:
    book = OkxBook("BTC-USDT")
    assert book.on_message(update(5, 4)) is Outcome.WAITING
    assert book.on_message(snapshot_frame(10)) is Outcome.APPLIED
    assert book.on_message(update(12, 10)) is Outcome.APPLIED
    assert book.on_message(update(12, 12)) is Outcome.APPLIED  # no change: seqId == prevSeqId
    assert book.last_id == 12
    assert book.on_message(update(20, 15)) is Outcome.GAP
    assert "prevSeqId 15 does not follow seqId 12" in book.failure
    assert not book.synced
    assert book.on_message(update(21, 20)) is Outcome.WAITING


def test_in_band_checks_both_the_chain_and_a_non_zero_checksum() -> None:
    book = OkxBook("BTC-USDT")
    book.on_message(snapshot_frame(10))
    right = book_checksum(
        levels([["100", "1"], ["99", "3"]], "X", "b"), levels([["101", "2"]], "X", "a")
    )
    assert book.on_message(update(11, 10, checksum=right)) is Outcome.APPLIED
    assert book.on_message(update(12, 11, [["98", "1", "0", "1"]], checksum=right)) is (
        Outcome.MISMATCH
    )


def test_rest_bridges_drops_held_updates_and_chains_on() -> None:
    book = OkxBook("BTC-USDT", rest=True)
    assert not book.wants_snapshot
    for seq, prev in ((11, 10), (13, 11), (15, 13), (18, 15)):
        assert book.on_message(update(seq, prev)) is Outcome.WAITING
    assert book.wants_snapshot
    assert book.on_snapshot(rest(14)) is SnapshotOutcome.SYNCED  # 13 < 14 < 15 bridges
    assert (book.dropped, book.applied_from_buffer) == (2, 2)
    assert book.synced
    assert book.last_id == 18
    assert not book.wants_snapshot
    assert book.on_message(update(19, 18)) is Outcome.APPLIED
    assert book.on_snapshot(rest(30)) is SnapshotOutcome.UNWANTED


def test_rest_bridge_is_inclusive_on_prev_seq_id() -> None:
    book = OkxBook("BTC-USDT", rest=True)
    book.on_message(update(11, 10))
    book.on_message(update(15, 11))
    assert book.on_snapshot(rest(11)) is SnapshotOutcome.SYNCED  # prev 11 <= 11 < 15
    assert (book.dropped, book.applied_from_buffer, book.last_id) == (1, 1, 15)


def test_rest_snapshot_newer_than_every_update_waits_for_the_bridging_one() -> None:
    book = OkxBook("BTC-USDT", rest=True)
    book.on_message(update(11, 10))
    assert book.on_snapshot(rest(12)) is SnapshotOutcome.SYNCED
    assert book.dropped == 1
    assert book.synced
    assert book.on_message(update(12, 11)) is Outcome.DROPPED  # still inside the snapshot
    assert book.on_message(update(16, 12)) is Outcome.APPLIED  # 12 <= 12 < 16
    assert book.on_message(update(17, 16)) is Outcome.APPLIED


def test_rest_snapshot_older_than_the_first_buffered_update_is_refetched() -> None:
    book = OkxBook("BTC-USDT", rest=True)
    book.on_message(update(21, 20))
    assert book.on_snapshot(rest(19)) is SnapshotOutcome.TOO_OLD
    assert "older than the first buffered update's prevSeqId 20" in book.failure
    assert book.wants_snapshot
    assert len(book.buffer) == 1
    assert book.on_snapshot(rest(20)) is SnapshotOutcome.SYNCED
    assert book.last_id == 21


def test_rest_a_buffered_chain_break_fails_the_snapshot() -> None:
    book = OkxBook("BTC-USDT", rest=True)
    book.on_message(update(11, 10))
    book.on_message(update(14, 12))  # 12 != 11: an update was lost
    assert book.on_snapshot(rest(10)) is SnapshotOutcome.BROKEN
    assert "prevSeqId 12 does not follow seqId 11" in book.failure
    assert not book.synced
    assert not book.buffer
    assert book.on_message(update(15, 14)) is Outcome.WAITING
    assert book.wants_snapshot


def test_rest_a_first_update_past_the_snapshot_does_not_bridge() -> None:
    book = OkxBook("BTC-USDT", rest=True)
    book.on_message(update(11, 10))
    assert book.on_snapshot(rest(12)) is SnapshotOutcome.SYNCED
    assert book.on_message(update(16, 13)) is Outcome.GAP  # 13 > 12: 12..13 was lost
    assert "does not bridge the snapshot's seqId 12" in book.failure


def test_rest_a_chain_break_after_sync_resyncs() -> None:
    book = OkxBook("BTC-USDT", rest=True)
    book.on_message(update(11, 10))
    book.on_snapshot(rest(10))
    assert book.on_message(update(13, 12)) is Outcome.GAP
    assert not book.synced
    assert book.on_message(update(14, 13)) is Outcome.WAITING
    assert book.wants_snapshot


def test_rest_ignores_in_band_snapshots() -> None:
    book = OkxBook("BTC-USDT", rest=True)
    assert book.on_message(snapshot_frame(10)) is Outcome.WAITING
    assert not book.synced
    assert not book.buffer
