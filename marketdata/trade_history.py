"""Past trades of one symbol over REST (Binance: GET /fapi/v1/aggTrades), through the
exchange's RestGate so that filling trade gaps stays inside the same weight budget as the
book snapshots."""

from __future__ import annotations

import functools
import logging

import aiohttp

from marketdata.capped_read import DEFAULT_MAX_PAGE_BYTES
from marketdata.events import Trade
from marketdata.metrics import Metrics
from marketdata.rest_fetch import Failure, RestFetch
from marketdata.rest_gate import RestGate
from marketdata.venues.base import ExchangeAdapter

log = logging.getLogger(__name__)


class TradeHistory:
    def __init__(
        self,
        adapter: ExchangeAdapter,
        key: str,  # "binance_futures:BTCUSDT", for the log
        symbol: str,
        session: aiohttp.ClientSession,
        gate: RestGate,
        metrics: Metrics,
        max_bytes: int = DEFAULT_MAX_PAGE_BYTES,
    ) -> None:
        self._adapter = adapter
        self._symbol = symbol
        self._parse = functools.partial(adapter.parse_agg_trades, symbol)
        self.rest = RestFetch(
            key, "aggTrades", session, gate, metrics.trade_backfill_requests,
            metrics.messages_error, log, max_bytes,
        )  # fmt: skip

    async def page(self, from_id: int, limit: int) -> list[Trade] | None:
        """Up to `limit` trades from id `from_id` on, oldest first; None if the request
        failed (counted, told once per outage; a 429/418 also stops the gate for the time
        asked)."""
        url = self._adapter.agg_trades_url(self._symbol, from_id, limit)
        trades = await self.rest.get(url, self._adapter.agg_trades_weight, self._parse)
        return None if isinstance(trades, Failure) else trades
