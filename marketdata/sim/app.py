"""One simulator app serving several venues on one port, each in its own dialect.

binance_futures  /fapi/v1/..., /public|market/stream, /public|market/ws/<stream>
binance_spot     /api/v3/..., /stream
kraken           /kraken/v2
okx              /okx/ws/v5/public, /api/v5/market/books
coinbase         /coinbase (Advanced Trade market data)
bybit            /bybit/v5/public/linear (and /spot, /inverse)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from aiohttp import web

from marketdata.sim import (
    bybit_server,
    coinbase_server,
    kraken_server,
    okx_server,
    server,
    spot_server,
)
from marketdata.sim.bybit_market import BybitSource
from marketdata.sim.coinbase_market import CoinbaseSource
from marketdata.sim.kraken_market import KrakenSource
from marketdata.sim.okx_market import OkxSource
from marketdata.sim.scenarios import Scenario
from marketdata.sim.sources import Source

VENUES = ("binance_futures", "binance_spot", "kraken", "okx", "coinbase", "bybit")
PATHS = {
    "binance_futures": server.PATHS,
    "binance_spot": spot_server.PATHS,
    "kraken": kraken_server.PATHS,
    "okx": okx_server.PATHS,
    "coinbase": coinbase_server.PATHS,
    "bybit": bybit_server.PATHS,
}
AnySource = Source | KrakenSource | OkxSource | CoinbaseSource
_S = TypeVar("_S", KrakenSource, OkxSource, CoinbaseSource, BybitSource)


class VenueError(ValueError):
    """A venue the simulator does not serve, or a source of the wrong kind for it."""


def create_sim_app(
    venues: Mapping[str, AnySource],
    scenario: Scenario | Mapping[str, Scenario] | None = None,
    ping_interval_s: float = 180.0,
    heartbeat_s: float = 1.0,
) -> web.Application:
    """`venues`: venue name -> its source (a KrakenSource for "kraken", an OkxSource for
    "okx", a CoinbaseSource for "coinbase", a BybitSource for "bybit", a Binance Source for
    the Binance venues).
    `scenario`: one for every venue (shared counts and log), or one per venue name (none:
    no faults)."""
    app = web.Application()
    for venue, source in venues.items():
        faults = scenario.get(venue) if isinstance(scenario, Mapping) else scenario
        if venue == "okx":
            okx_server.create_okx_routes(app, _kind(venue, source, OkxSource), faults)
        elif venue == "coinbase":
            coinbase = _kind(venue, source, CoinbaseSource)
            coinbase_server.create_coinbase_routes(app, coinbase, faults, heartbeat_s)
        elif venue == "bybit":
            bybit_server.create_bybit_routes(app, _kind(venue, source, BybitSource), faults)
        elif venue == "kraken":
            if isinstance(source, OkxSource | BybitSource):  # KrakenSources underneath
                raise VenueError(f"venue kraken needs a KrakenSource, not {type(source).__name__}")
            kraken = _kind(venue, source, KrakenSource)
            kraken_server.create_kraken_routes(app, kraken, faults, heartbeat_s)
        elif venue in ("binance_futures", "binance_spot"):
            if isinstance(source, KrakenSource | CoinbaseSource):
                raise VenueError(f"venue {venue} needs a Binance source, not "
                                 f"{type(source).__name__}")  # fmt: skip
            add = server.add_futures_routes if venue == "binance_futures" else (
                spot_server.add_spot_routes
            )  # fmt: skip
            add(app, source, ping_interval_s, faults)
        else:
            raise VenueError(f"unknown venue {venue!r} (known: {', '.join(VENUES)})")
    return app


def _kind(venue: str, source: AnySource, kind: type[_S]) -> _S:
    if not isinstance(source, kind):
        article = "an" if kind.__name__[0] in "AEIOU" else "a"
        raise VenueError(
            f"venue {venue} needs {article} {kind.__name__}, not {type(source).__name__}"
        )
    return source
