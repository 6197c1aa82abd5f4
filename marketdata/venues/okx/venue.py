"""OKX as a venue: its instruments in groups, one connection per group."""

from __future__ import annotations

import aiohttp

from marketdata.exchange_config import ExchangeConfig
from marketdata.venue import Feed, FeedContext
from marketdata.venues.okx.config import OkxConfig
from marketdata.venues.okx.feed import feeds_for
from marketdata.venues.okx.wire import NAME


class OkxVenue:
    name = NAME

    async def symbol_problems(
        self, session: aiohttp.ClientSession, config: ExchangeConfig
    ) -> list[str]:
        # An instrument OKX does not list is refused by its subscribe (60018, naming it):
        # that is logged, counted and on /ready for that instrument.
        return []

    def build(self, config: ExchangeConfig, context: FeedContext) -> list[Feed]:
        if not isinstance(config, OkxConfig):
            raise TypeError(f"the OKX venue was given {type(config).__name__}")
        return list(feeds_for(config, context))
