"""Bybit as a venue: its symbols in groups, one connection per group."""

from __future__ import annotations

import aiohttp

from marketdata.exchange_config import ExchangeConfig
from marketdata.venue import Feed, FeedContext
from marketdata.venues.bybit.config import BybitConfig
from marketdata.venues.bybit.feed import feeds_for
from marketdata.venues.bybit.wire import NAME


class BybitVenue:
    name = NAME

    async def symbol_problems(
        self, session: aiohttp.ClientSession, config: ExchangeConfig
    ) -> list[str]:
        # Not checked at start: Bybit rejects the subscribe of a symbol it does not list
        # ("error:handler not found"), which is retried and stays on /ready for it.
        return []

    def build(self, config: ExchangeConfig, context: FeedContext) -> list[Feed]:
        if not isinstance(config, BybitConfig):
            raise TypeError(f"the Bybit venue was given {type(config).__name__}")
        return list(feeds_for(config, context))
