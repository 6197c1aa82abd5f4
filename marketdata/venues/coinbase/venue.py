"""Coinbase Advanced Trade as a venue: its products in groups, one connection per group."""

from __future__ import annotations

import aiohttp

from marketdata.exchange_config import ExchangeConfig
from marketdata.venue import Feed, FeedContext
from marketdata.venues.coinbase.config import CoinbaseConfig
from marketdata.venues.coinbase.feed import feeds_for
from marketdata.venues.coinbase.wire import NAME


class CoinbaseVenue:
    name = NAME

    async def symbol_problems(
        self, session: aiohttp.ClientSession, config: ExchangeConfig
    ) -> list[str]:
        # A product Coinbase does not list is refused on its subscribe: each connection
        # retries it alone and reports it on /ready, without holding up the others.
        return []

    def build(self, config: ExchangeConfig, context: FeedContext) -> list[Feed]:
        if not isinstance(config, CoinbaseConfig):
            raise TypeError(f"the Coinbase venue was given {type(config).__name__}")
        return list(feeds_for(config, context))
