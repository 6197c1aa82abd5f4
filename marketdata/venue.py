"""The boundary between the service and each venue.

A venue (one package under marketdata/venues) turns its config section into feeds. A feed
owns some connections and the books and trades of the symbols they carry: per symbol
(Binance: a diff stream and a trade stream, each its own connection, or a group of symbols
sharing two) or per group of symbols on one connection (Kraken, OKX, Coinbase:
`symbols_per_connection`). How a book is kept, checked and resynced is the venue's: REST
snapshots bridged by update ids, in-band snapshots checked by checksums, per-connection
sequence numbers.

What every feed gives the service is the same: its tasks, its symbols' states (which the
publisher renders), why each symbol is not ready, its gauges, and a clean close.
"""

from __future__ import annotations

from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from marketdata.config import ReconnectConfig
from marketdata.exchange_config import ExchangeConfig
from marketdata.metrics import Metrics
from marketdata.publish import Publisher
from marketdata.rest_budget import RestBudgets
from marketdata.state import AnyState


@dataclass(frozen=True)
class FeedContext:
    """What the service lends every feed."""

    publisher: Publisher
    session: aiohttp.ClientSession
    reconnect: ReconnectConfig
    metrics: Metrics
    stale_after_s: float
    rest_budgets: RestBudgets | None = None  # rest_budget.shared: one budget per IP, in Redis


class Feed(Protocol):
    key: str  # names it in logs and task names: `kraken:BTC/USD`, `kraken:connection2`

    @property
    def states(self) -> Sequence[AnyState]:
        """The symbols this feed keeps, each registered with the publisher."""

    def tasks(self) -> list[Coroutine[Any, Any, None]]:
        """What runs until the service stops (one per connection, usually)."""

    def readiness(self, now: float, stale_after_s: float) -> dict[str, list[str]]:
        """`exchange:symbol` -> why it is not ready, for every symbol that is not."""

    def update_gauges(self) -> None: ...

    async def close(self) -> None:
        """Stop background work (snapshot fetches, backfills); connections are cancelled."""


class Venue(Protocol):
    name: str

    async def symbol_problems(
        self, session: aiohttp.ClientSession, config: ExchangeConfig
    ) -> list[str]:
        """At start: one line per configured symbol the venue does not list (naming its key
        path); [] when all are listed or the list cannot be had."""

    def build(self, config: ExchangeConfig, context: FeedContext) -> list[Feed]:
        """The feeds for every configured symbol of this venue."""
