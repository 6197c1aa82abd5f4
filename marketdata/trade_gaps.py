"""One symbol's live trades in id order: repeats dropped, gaps filled from REST.

A gap in the aggTrade ids (a reconnect loses the trades between the old connection's last
and the new one's first) is fetched over REST. Live trades that arrive meanwhile are held,
then published after the fetched ones, so the tape stays in id order. The hold is bounded
(`max_hold_s`, `max_held`); a gap too large to fetch, or a fetch that keeps failing, lets
the live trades go on and counts what could not be recovered as lost. Every gap is logged
when found and when settled, with its id range.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from marketdata.events import Trade
from marketdata.metrics import Metrics
from marketdata.trade_ids import TradeIds, Verdict

log = logging.getLogger(__name__)

PageFetcher = Callable[[int, int], Awaitable[list[Trade] | None]]  # (from_id, limit)


@dataclass(frozen=True, slots=True)
class GapLimits:
    max_gap: int = 10_000  # ids; a larger gap is not fetched (10 pages, 200 weight)
    max_held: int = 20_000  # live trades held while a gap is filled
    max_hold_s: float = 15.0  # the longest a gap may hold the live trades back
    page_limit: int = 1000
    attempts: int = 3  # failed requests per gap before it is given up
    retry_delay_s: float = 0.5


@dataclass(slots=True)
class _Gap:
    first: int  # first missing id
    last: int  # last missing id
    opener: int  # id of the live trade that revealed it
    found: list[Trade] = field(default_factory=list)
    failure: str = ""

    @property
    def size(self) -> int:
        return self.last - self.first + 1


class TradeGaps:
    def __init__(
        self,
        exchange: str,
        symbol: str,
        ids: TradeIds,
        publish: Callable[[Trade], None],
        fetch: PageFetcher,
        metrics: Metrics,
        limits: GapLimits = GapLimits(),
    ) -> None:
        self._name = f"{exchange} {symbol}"
        self._ids = ids
        self._publish = publish
        self._fetch_page = fetch
        self._limits = limits
        self._duplicates = metrics.trades_duplicate.labels()
        self._gaps_found = metrics.trade_gaps.labels(exchange, symbol)
        self._backfilled = metrics.trades_backfilled.labels(exchange, symbol)
        self._lost = metrics.trades_lost.labels(exchange, symbol)
        self._out_of_sequence = metrics.trades_out_of_sequence.labels(exchange, symbol)
        self._held: list[Trade] | None = None  # live trades held while gaps are filled
        self._pending: list[_Gap] = []  # gaps still to fetch, oldest first
        self._settled: list[_Gap] = []  # gaps fetched (or given up) during this hold
        self._unconfirmed: _Gap | None = None  # too large to fetch; lost unless retracted
        self._task: asyncio.Task[None] | None = None
        self._deadline = 0.0

    @property
    def holding(self) -> bool:
        return self._held is not None

    def on_trade(self, trade: Trade) -> None:
        sequence = trade.sequence
        if sequence is None:  # the venue's ids are not a sequence: nothing to check
            self._publish(trade)
            return
        verdict = self._ids.classify(sequence)
        if self._unconfirmed is not None and verdict is not Verdict.RETRACT:
            self._confirm_loss()
        if verdict is Verdict.NEXT:
            self._accept(trade)
        elif verdict is Verdict.REPEAT:
            self._duplicates.inc()
        else:
            self._off_sequence(trade, verdict)

    async def close(self) -> None:
        """Stop fetching; publish what is held (the unfetched rest counts as lost)."""
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._release("shutting down")
        if self._unconfirmed is not None:
            self._confirm_loss()

    def _accept(self, trade: Trade) -> None:
        held = self._held
        if held is None:
            self._publish(trade)
            return
        held.append(trade)
        if len(held) > self._limits.max_held:
            self._give_up(f"over {self._limits.max_held} live trades held")

    def _off_sequence(self, trade: Trade, verdict: Verdict) -> None:
        if verdict is Verdict.RETRACT:
            self._retract(self._ids.retracted, _seq(trade))
            self.on_trade(trade)  # again, against the sequence from before the outlier
        elif verdict is Verdict.GAP:
            self._gap(trade)
        else:  # RESTART
            self._out_of_sequence.inc()
            log.warning("%s: trade id went back to %d; following the new sequence",
                        self._name, _seq(trade))  # fmt: skip
            self._accept(trade)

    def _gap(self, trade: Trade) -> None:
        first, last = self._ids.missing
        gap = _Gap(first, last, _seq(trade))
        self._gaps_found.inc()
        if gap.size > self._limits.max_gap:
            log.warning("%s: trade ids %d..%d missing (%d trades), too many to fetch",
                        self._name, first, last, gap.size)  # fmt: skip
            self._unconfirmed = gap  # counted lost once the next trade confirms the jump
            self._accept(trade)
            return
        log.warning("%s: trade ids %d..%d missing (%d trades), fetching them",
                    self._name, first, last, gap.size)  # fmt: skip
        self._pending.append(gap)
        if self._held is None:
            self._held = []
            self._deadline = asyncio.get_running_loop().time() + self._limits.max_hold_s
        if self._task is None:
            self._task = asyncio.create_task(self._fill(), name=f"trade gaps {self._name}")
        self._accept(trade)

    def _retract(self, outlier: int, real: int) -> None:
        """The trade `outlier` jumped out of sequence and the next one went back to it."""
        self._out_of_sequence.inc()
        unconfirmed, self._unconfirmed = self._unconfirmed, None
        held = self._held
        if held and held[-1].sequence == outlier:
            held.pop()  # never published
            what = "dropped"
        else:
            what = "already published"
        log.warning("%s: trade id %d was out of sequence (%s; the ids go on at %d)",
                    self._name, outlier, what, real)  # fmt: skip
        if unconfirmed is None and self._pending and self._pending[-1].opener == outlier:
            self._pending.pop()  # the gap it opened was never one
            if not self._pending and self._task is not None:
                self._task.cancel()  # it was working on that gap
                self._task = None
                self._release("")

    def _confirm_loss(self) -> None:
        gap, self._unconfirmed = self._unconfirmed, None
        if gap is not None:
            self._lost.inc(gap.size)

    def _give_up(self, reason: str) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._release(reason)

    async def _fill(self) -> None:
        try:
            async with asyncio.timeout_at(self._deadline):
                while self._pending:
                    gap = self._pending[0]
                    if await self._fetch(gap) and not await self._opener_exists(gap):
                        self._drop_outlier(gap)
                    if self._pending and self._pending[0] is gap:
                        self._settled.append(self._pending.pop(0))
            reason = ""
        except TimeoutError:
            reason = f"not done within {self._limits.max_hold_s:g}s"
        self._task = None
        self._release(reason)

    async def _fetch(self, gap: _Gap) -> bool:
        """Page through the gap; stop when it is covered, the exchange has no more, or
        requests have failed `attempts` times. True: the exchange ran out of trades before
        the end of the gap."""
        from_id, failures = gap.first, 0
        while from_id <= gap.last:
            limit = min(self._limits.page_limit, gap.last - from_id + 1)
            page = await self._fetch_page(from_id, limit)
            if page is None:
                failures += 1
                if failures >= self._limits.attempts:
                    gap.failure = f"{failures} requests failed"
                    return False
                await asyncio.sleep(self._limits.retry_delay_s * failures)
                continue
            gap.found.extend(t for t in page if from_id <= _seq(t) <= gap.last)
            if len(page) < limit or _seq(page[-1]) < from_id:
                return not gap.found or _seq(gap.found[-1]) < gap.last
            from_id = _seq(page[-1]) + 1
        return False

    async def _opener_exists(self, gap: _Gap) -> bool:
        """The exchange has no trades up to the one that opened the gap: does it know that
        one? Asked only while nothing has come after it (a later trade would have decided
        already); no answer counts as yes."""
        if not self._opener_is_last(gap):
            return True
        page = await self._fetch_page(gap.opener, 1)
        return page is None or (bool(page) and page[0].sequence == gap.opener)

    def _opener_is_last(self, gap: _Gap) -> bool:
        held = self._held
        if not held or not self._pending:
            return False
        return held[-1].sequence == gap.opener and self._pending[-1] is gap

    def _drop_outlier(self, gap: _Gap) -> None:
        """The exchange never had the trade that opened the gap: an outlier. Drop it; the
        trades the exchange does have go where it was, and the sequence goes on after them."""
        held = self._held
        if not held or not self._opener_is_last(gap):
            return  # a trade came meanwhile and settled it
        held.pop()
        last = _seq(gap.found[-1]) if gap.found else gap.first - 1
        self._ids.rewind(last + 1)
        self._out_of_sequence.inc()
        log.warning("%s: trade id %d was out of sequence (the exchange has none after %d): "
                    "dropped", self._name, gap.opener, last)  # fmt: skip
        if gap.found:
            gap.last = last
            self._settle(gap, "")
            held.extend(gap.found)
            self._backfilled.inc(len(gap.found))
        gap.found, gap.last = [], gap.first - 1  # nothing left to publish or settle

    def _release(self, reason: str) -> None:
        """Publish the fetched trades, each gap's just before the live trade that revealed
        it, and the held live trades; settle every gap of this hold."""
        held, self._held = self._held, None
        if held is None:
            return
        gaps = self._settled + self._pending
        self._settled, self._pending = [], []
        by_opener = {gap.opener: gap for gap in gaps}
        for trade in held:
            gap = by_opener.pop(trade.sequence, None) if trade.sequence is not None else None
            if gap is not None:
                self._publish_found(gap)
            self._publish(trade)
        for gap in by_opener.values():
            self._publish_found(gap)
        for gap in gaps:
            self._settle(gap, gap.failure or reason)

    def _publish_found(self, gap: _Gap) -> None:
        for trade in gap.found:
            self._publish(trade)
        self._backfilled.inc(len(gap.found))

    def _settle(self, gap: _Gap, reason: str) -> None:
        lost = gap.size - len(gap.found)
        if gap.size == 0:
            return  # there was no gap: the trade that opened it was an outlier
        if lost == 0:
            log.info("%s: trade ids %d..%d backfilled (%d trades)",
                     self._name, gap.first, gap.last, gap.size)  # fmt: skip
            return
        self._lost.inc(lost)
        why = reason or "the exchange returned no more"
        found = len(gap.found)
        log.warning("%s: trade ids %d..%d: %d of %d backfilled, %d lost (%s)",
                    self._name, gap.first, gap.last, found, gap.size, lost, why)  # fmt: skip


def _seq(trade: Trade) -> int:
    """The trade's place in its venue's id sequence (only such trades come here)."""
    sequence = trade.sequence
    if sequence is None:
        raise ValueError(f"{trade.exchange} {trade.symbol} trade {trade.trade_id} has no sequence")
    return sequence
