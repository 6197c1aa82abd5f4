"""Past trades of one symbol over REST (Binance: GET /fapi/v1/aggTrades), through the
exchange's RestGate so that filling trade gaps stays inside the same weight budget as the
book snapshots."""

from __future__ import annotations

import logging
import time

import aiohttp

from marketdata.events import Trade
from marketdata.exchanges.base import ExchangeAdapter, MalformedMessage
from marketdata.metrics import Metrics
from marketdata.rest_gate import RestGate

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 10.0


class TradeHistory:
    def __init__(
        self,
        adapter: ExchangeAdapter,
        symbol: str,
        session: aiohttp.ClientSession,
        gate: RestGate,
        metrics: Metrics,
    ) -> None:
        self._adapter = adapter
        self._symbol = symbol
        self._session = session
        self._gate = gate
        self._metrics = metrics

    async def page(self, from_id: int, limit: int) -> list[Trade] | None:
        """Up to `limit` trades from id `from_id` on, oldest first; None if the request
        failed (logged, counted; a 429/418 also stops the gate for the time asked)."""
        await self._gate.acquire(self._adapter.agg_trades_weight)
        url = self._adapter.agg_trades_url(self._symbol, from_id, limit)
        try:
            timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
            async with self._session.get(url, timeout=timeout) as response:
                body = await response.read()
                status = response.status
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            self._count("error")
            log.warning("%s: aggTrades request failed: %s", self._symbol, e or type(e).__name__)
            return None
        self._count(str(status))
        self._gate.record(status, response.headers)
        if status != 200:
            log.warning("%s: aggTrades HTTP %s: %.200r", self._symbol, status, body)
            return None
        try:
            return self._adapter.parse_agg_trades(self._symbol, body, time.time())
        except MalformedMessage as e:
            self._metrics.messages_error.labels(e.reason).inc()
            log.warning("%s: skipped malformed aggTrades reply (%s)", self._symbol, e)
            return None

    def _count(self, status: str) -> None:
        self._metrics.trade_backfill_requests.labels(status).inc()
