"""Binance futures and spot as venues: one SymbolFeed per symbol, one REST gate per venue."""

from __future__ import annotations

from collections.abc import Sequence

import aiohttp

from marketdata.connect_pacer import ConnectPacer
from marketdata.exchange_config import ExchangeConfig
from marketdata.feed import WebSocketFeed
from marketdata.instruments import symbol_problems
from marketdata.rest_gate import RestGate
from marketdata.state import SymbolState
from marketdata.symbol_feed import SymbolFeed
from marketdata.sync import BookSync
from marketdata.venue import Feed, FeedContext
from marketdata.venues.base import AdapterFactory, ExchangeAdapter
from marketdata.venues.binance.config import BinanceConfig
from marketdata.venues.binance.group import BinanceGroupFeed

# Spot documents 300 connection attempts per 5 minutes per IP (exchanges.md §2); futures
# documents no figure, so the same is kept there.
CONNECTIONS_PER_IP = (300, 300.0)


class BinanceVenue:
    def __init__(self, name: str, adapter: AdapterFactory) -> None:
        self.name = name
        self._adapter = adapter

    def adapter(self, config: ExchangeConfig) -> ExchangeAdapter:
        binance = _binance(config)
        return self._adapter(binance.ws_url, binance.rest_url, binance.snapshot_limit)

    async def symbol_problems(
        self, session: aiohttp.ClientSession, config: ExchangeConfig
    ) -> list[str]:
        return await symbol_problems(session, self.adapter(config), config.symbols)

    def build(self, config: ExchangeConfig, context: FeedContext) -> list[Feed]:
        binance = _binance(config)
        adapter = self.adapter(binance)
        # The weight limit is per IP: shared with the other processes behind it when
        # rest_budget.shared is on, else this process's alone.
        budgets = context.rest_budgets
        shared = None if budgets is None else budgets.for_venue(self.name)
        gate = RestGate(binance.rest_weight_per_min, shared=shared)
        pacer = ConnectPacer(*CONNECTIONS_PER_IP)  # so is the connection rate

        def symbol_feed(symbol: str, shared: Sequence[WebSocketFeed] | None = None) -> SymbolFeed:
            sync = BookSync(adapter.continuity, max_levels=binance.max_levels_per_side)
            return SymbolFeed(
                adapter, SymbolState(self.name, symbol, sync), context.publisher,
                context.session, context.reconnect, context.metrics, gate,
                context.stale_after_s, binance.top_audit_mismatches,
                binance.max_snapshot_bytes, pacer, shared,
            )  # fmt: skip

        size = binance.symbols_per_connection
        if size == 1:
            return [symbol_feed(symbol) for symbol in binance.symbols]
        groups = [binance.symbols[i : i + size] for i in range(0, len(binance.symbols), size)]
        return [
            BinanceGroupFeed(
                adapter, group, context, f"{self.name}:connection{i + 1}", symbol_feed, pacer
            )
            for i, group in enumerate(groups)
        ]


def _binance(config: ExchangeConfig) -> BinanceConfig:
    if not isinstance(config, BinanceConfig):
        raise TypeError(f"a Binance venue was given {type(config).__name__}")
    return config
