"""OKX as a venue: its instruments in groups, one connection per group."""

from __future__ import annotations

from collections.abc import Sequence

import aiohttp

from marketdata.connect_pacer import ConnectPacer
from marketdata.exchange_config import ExchangeConfig
from marketdata.venue import Feed, FeedContext
from marketdata.venues.okx.config import OkxConfig
from marketdata.venues.okx.feed import OkxFeed
from marketdata.venues.okx.snapshots import okx_gate, shared_okx_budget
from marketdata.venues.okx.wire import NAME

CONNECTIONS_PER_IP = (3, 1.0)  # OKX: 3 connection requests a second per IP


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


def feeds_for(config: OkxConfig, context: FeedContext) -> list[OkxFeed]:
    """The configured instruments in groups of `symbols_per_connection`, one feed each;
    one connection pacer and one REST gate for all of them (OKX's limits are per IP, so the
    gate asks the budget shared through Redis when `rest_budget.shared` is on)."""
    size = config.symbols_per_connection
    groups = [config.symbols[i : i + size] for i in range(0, len(config.symbols), size)]
    pacer = ConnectPacer(*CONNECTIONS_PER_IP)
    budgets = context.rest_budgets
    gate = okx_gate(None if budgets is None else shared_okx_budget(budgets))
    return [
        OkxFeed(config, group, context, _name(group, i), pacer, gate)
        for i, group in enumerate(groups)
    ]


def _name(group: Sequence[str], index: int) -> str:
    return f"{NAME}:{group[0]}" if len(group) == 1 else f"{NAME}:connection{index + 1}"
