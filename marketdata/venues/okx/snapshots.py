"""REST book snapshots for `snapshot: rest`: `GET /api/v5/market/books?instId=..&sz=400&source=0`.

Made the way every REST request of the service is (marketdata.rest_fetch.RestFetch: a
timeout, a size cap, replies counted by status, failures told as one Outage) through one
RestGate per venue. OKX allows 40 requests per 2 s per IP on /market/books; the gate is
weight-per-minute based, so the limit is kept by its spacing: one request per 0.1 s is at
most 20 per 2 s, half OKX's allowance, and its minute budget (1200 a minute, 80% of it
used) is then never the binding part. A 429 stops every request for the time asked.
With `rest_budget.shared` on, the limit that binds is shared by every process behind the
IP (marketdata.rest_budget): 32 requests (80% of 40) in each 2 s window, counted in Redis;
a 429 seen by one pauses them all.

One fetch per book at a time. A snapshot older than the book's first buffered update is
fetched again at once (it is a replica that lags); a failed request or a buffered update
that does not chain is tried again after a backoff.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import aiohttp

from marketdata.backoff import Backoff
from marketdata.metrics import Metrics
from marketdata.rest_budget import RestBudgets, SharedBudget
from marketdata.rest_fetch import Failure, RestFetch
from marketdata.rest_gate import BUDGET_FRACTION, RestGate, Shared
from marketdata.venues.okx.book_state import OkxBook, SnapshotOutcome
from marketdata.venues.okx.wire import NAME, RestBook, parse_rest_book

log = logging.getLogger(__name__)

MAX_SNAPSHOT_BYTES = 2 * 1024 * 1024  # 400 levels a side are about 40 kB
REQUESTS_PER_2S = 40


def shared_okx_budget(budgets: RestBudgets) -> SharedBudget:
    """OKX's binding limit shared by every process behind the IP: 80% of 40 requests in
    each 2 s window (of the Redis server's clock)."""
    return budgets.for_venue(NAME, window_s=2.0, limit=int(REQUESTS_PER_2S * BUDGET_FRACTION))


def okx_gate(shared: Shared | None = None) -> RestGate:
    """OKX's /market/books limit (40 per 2 s per IP) kept by spacing, as said above; `shared`:
    the budget of every process behind the same IP."""
    return RestGate(weight_limit_per_min=REQUESTS_PER_2S * 30, min_spacing_s=0.1, shared=shared)


Apply = Callable[[OkxBook, RestBook], SnapshotOutcome]


class SnapshotFetcher:
    def __init__(
        self,
        rest_url: str,
        session: aiohttp.ClientSession,
        gate: RestGate,
        metrics: Metrics,
        backoff: Callable[[], Backoff],
        apply: Apply,
    ) -> None:
        self._rest_url = rest_url.rstrip("/")
        self._session = session
        self._gate = gate
        self._metrics = metrics
        self._new_backoff = backoff
        self._apply = apply
        self._fetches: dict[str, RestFetch] = {}
        self._backoff: dict[str, Backoff] = {}
        self._running: dict[OkxBook, asyncio.Task[None]] = {}

    def problem(self, inst_id: str) -> str | None:
        fetch = self._fetches.get(inst_id)
        if fetch is not None and fetch.outage.active:
            return f"books snapshot failing: {fetch.outage.cause}"
        return None

    def request(self, book: OkxBook) -> None:
        """Fetch a snapshot for `book` unless one is on its way."""
        if book in self._running or not book.wants_snapshot:
            return
        task = asyncio.create_task(self._fetch(book), name=f"{NAME}:{book.inst_id}:snapshot")
        self._running[book] = task
        task.add_done_callback(lambda _: self._running.pop(book, None))

    async def close(self) -> None:
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _fetch_of(self, inst_id: str) -> RestFetch:
        fetch = self._fetches.get(inst_id)
        if fetch is None:
            metrics = self._metrics
            fetch = self._fetches[inst_id] = RestFetch(
                f"{NAME}:{inst_id}", "books snapshot", self._session, self._gate,
                metrics.snapshot_requests, metrics.messages_error, log, MAX_SNAPSHOT_BYTES,
            )  # fmt: skip
        return fetch

    async def _fetch(self, book: OkxBook) -> None:
        inst = book.inst_id
        backoff = self._backoff.setdefault(inst, self._new_backoff())
        url = f"{self._rest_url}/api/v5/market/books?instId={inst}&sz=400&source=0"
        fetch = self._fetch_of(inst)
        while book.wants_snapshot:
            result = await fetch.get(
                url, 1, lambda body, at: parse_rest_book(body, inst, at),
                lambda: book.wants_snapshot,
            )  # fmt: skip
            if result is Failure.UNWANTED:
                return
            if isinstance(result, Failure):
                await asyncio.sleep(backoff.next_delay())
                continue
            outcome = self._apply(book, result)
            if outcome is SnapshotOutcome.SYNCED or outcome is SnapshotOutcome.UNWANTED:
                backoff.reset()
                return
            if outcome is SnapshotOutcome.BROKEN:
                await asyncio.sleep(backoff.next_delay())
            # TOO_OLD: the buffer is kept and the next snapshot will be newer: at once
