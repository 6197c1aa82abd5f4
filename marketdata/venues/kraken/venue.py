"""Kraken as a venue: its pairs in groups, one connection per group."""

from __future__ import annotations

import aiohttp

from marketdata.exchange_config import ExchangeConfig
from marketdata.venue import Feed, FeedContext
from marketdata.venues.kraken.config import KrakenConfig
from marketdata.venues.kraken.feed import feeds_for
from marketdata.venues.kraken.wire import NAME


class KrakenVenue:
    name = NAME

    async def symbol_problems(
        self, session: aiohttp.ClientSession, config: ExchangeConfig
    ) -> list[str]:
        # Pairs are checked on each connection against the instrument channel, whose
        # precisions the checksums need anyway; an unlisted pair is logged and on /ready.
        return []

    def build(self, config: ExchangeConfig, context: FeedContext) -> list[Feed]:
        if not isinstance(config, KrakenConfig):
            raise TypeError(f"the Kraken venue was given {type(config).__name__}")
        return list(feeds_for(config, context))
