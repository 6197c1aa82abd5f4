"""One OKX instrument's `books` (400 levels), kept by the v5 rules. Pure: fetching a REST
snapshot and resubscribing are the caller's.

Two ways to start a book (`exchanges.okx.snapshot`):
- `in_band`: the subscription's first message is a snapshot (prevSeqId -1) that replaces
  the book; updates before it (after a resync) are ignored.
- `rest`: OKX's announced procedure for when the in-band snapshot goes: updates are
  buffered, the caller fetches `GET /api/v5/market/books` (with its seqId) and hands it to
  `on_snapshot`. A snapshot older than the first buffered update's prevSeqId is refetched;
  buffered updates with seqId <= the snapshot's are dropped; the first one applied must
  have prevSeqId <= snapSeqId < seqId.
Either way each update then chains: `prevSeqId == last seqId` whenever seqId is present,
and the legacy checksum (top 25 levels) must match whenever it is non-zero; both are
checked when both are present. sz "0" deletes. A break discards the book and says why.
"""

from __future__ import annotations

import enum

from marketdata.book import OrderBook
from marketdata.venues.okx.checksum import CHECKSUM_LEVELS, book_checksum
from marketdata.venues.okx.wire import BookMessage, RestBook

MAX_BUFFERED = 5000  # updates held while a REST snapshot loads (100 ms each: over 8 min)


class Outcome(enum.Enum):
    APPLIED = "applied"  # the book is exact as of this message
    WAITING = "waiting"  # no book yet: ignored (in_band) or buffered (rest)
    DROPPED = "dropped"  # rest: already in the snapshot (seqId <= snapSeqId)
    GAP = "gap"  # prevSeqId does not chain (or does not bridge the snapshot): resync
    MISMATCH = "mismatch"  # the checksum does not match the book: resync
    TOO_LARGE = "too_large"  # a side went past the book's level limit: resync


class SnapshotOutcome(enum.Enum):
    SYNCED = "synced"  # the book is the snapshot plus every buffered update after it
    TOO_OLD = "too_old"  # older than the first buffered update's prevSeqId: fetch again
    BROKEN = "broken"  # a buffered update failed (see `failure`): fetch again
    UNWANTED = "unwanted"  # the book is synced already


class OkxBook:
    """Keeps one instrument's OrderBook exactly in step with OKX, or says it is not."""

    __slots__ = (
        "applied_from_buffer",
        "book",
        "buffer",
        "dropped",
        "expected",
        "failure",
        "got",
        "inst_id",
        "last_exchange_ts",
        "last_seq",
        "rest",
        "synced",
        "_bridge_from",
    )

    def __init__(self, inst_id: str, rest: bool = False) -> None:
        self.inst_id = inst_id
        self.rest = rest  # True: snapshots come over REST (the buffered procedure)
        self.book = OrderBook()
        self.synced = False
        self.last_seq: int | None = None  # seqId the book is exact at (None: not sent)
        self.last_exchange_ts = 0
        self.buffer: list[BookMessage] = []  # rest: updates held until the snapshot
        self.expected = 0  # after a MISMATCH: OKX's checksum ...
        self.got = 0  # ... and the book's
        self.failure = ""  # why the last GAP/MISMATCH/TOO_LARGE happened, for the log
        self.dropped = 0  # rest: buffered updates the last snapshot already held
        self.applied_from_buffer = 0  # rest: ... and those applied on top of it
        self._bridge_from: int | None = None  # rest: the snapshot's seqId, until bridged

    @property
    def last_id(self) -> int | None:
        return self.last_seq

    @property
    def wants_snapshot(self) -> bool:
        """rest: updates are buffered and no snapshot is in the book yet."""
        return self.rest and not self.synced and bool(self.buffer)

    def discard(self) -> None:
        """Forget the book (a resync, a lost connection) until the next snapshot."""
        self.synced = False
        self.book.clear()
        self.buffer.clear()
        self.last_seq = None
        self._bridge_from = None

    def on_message(self, message: BookMessage) -> Outcome:
        if message.snapshot:
            if self.rest:
                return Outcome.WAITING  # this mode builds its books from REST only
            if not self.book.load(message.bids, message.asks):
                return self._fail(Outcome.TOO_LARGE, "the snapshot holds too many levels")
            self.last_seq = message.seq_id
            return self._checked(message)
        if not self.synced:
            if self.rest:
                self.buffer.append(message)
                if len(self.buffer) > MAX_BUFFERED:
                    del self.buffer[0]  # its successor's prevSeqId is the bound now
            return Outcome.WAITING
        return self._update(message)

    def on_snapshot(self, snapshot: RestBook) -> SnapshotOutcome:
        """rest: the REST snapshot, bridged onto the buffered updates."""
        if self.synced:
            return SnapshotOutcome.UNWANTED
        buffer = self.buffer
        first_prev = buffer[0].prev_seq_id if buffer else None
        if first_prev is not None and snapshot.seq_id < first_prev:
            self.failure = (
                f"snapshot seqId {snapshot.seq_id} is older than the first buffered "
                f"update's prevSeqId {first_prev}"
            )
            return SnapshotOutcome.TOO_OLD
        if not self.book.load(snapshot.bids, snapshot.asks):
            self._fail(Outcome.TOO_LARGE, "the snapshot holds too many levels")
            return SnapshotOutcome.BROKEN
        self.synced = True
        self.last_seq = snapshot.seq_id
        self.last_exchange_ts = snapshot.exchange_ts
        self._bridge_from = snapshot.seq_id
        self.buffer = []
        self.dropped = self.applied_from_buffer = 0
        for message in buffer:
            outcome = self._update(message)
            if outcome is Outcome.DROPPED:
                self.dropped += 1
            elif outcome is Outcome.APPLIED:
                self.applied_from_buffer += 1
            else:
                return SnapshotOutcome.BROKEN
        return SnapshotOutcome.SYNCED

    def _update(self, message: BookMessage) -> Outcome:
        seq, prev = message.seq_id, message.prev_seq_id
        bridge = self._bridge_from
        if bridge is not None:  # rest: the first update after the snapshot
            if seq is None or prev is None:
                return self._fail(Outcome.GAP, "an update without seqId cannot be bridged")
            if seq <= bridge:
                return Outcome.DROPPED
            if not prev <= bridge < seq:
                return self._fail(
                    Outcome.GAP,
                    f"first update prevSeqId {prev}, seqId {seq} does not bridge the "
                    f"snapshot's seqId {bridge}",
                )
            self._bridge_from = None
        elif seq is not None and self.last_seq is not None and prev != self.last_seq:
            return self._fail(
                Outcome.GAP, f"prevSeqId {prev} does not follow seqId {self.last_seq}"
            )
        if not self.book.apply(message.bids, message.asks):
            return self._fail(Outcome.TOO_LARGE, "a side passed the level limit")
        if seq is not None:
            self.last_seq = seq
        return self._checked(message)

    def _checked(self, message: BookMessage) -> Outcome:
        if message.checksum:
            got = self.checksum()
            if got != message.checksum:
                self.expected, self.got = message.checksum, got
                return self._fail(Outcome.MISMATCH, f"checksum OKX {message.checksum}, book {got}")
        self.synced = True
        self.last_exchange_ts = message.exchange_ts
        return Outcome.APPLIED

    def checksum(self) -> int:
        """The legacy checksum of the book as it stands."""
        book = self.book
        return book_checksum(book.best_bids(CHECKSUM_LEVELS), book.best_asks(CHECKSUM_LEVELS))

    def _fail(self, outcome: Outcome, why: str) -> Outcome:
        self.failure = why
        self.discard()
        return outcome
