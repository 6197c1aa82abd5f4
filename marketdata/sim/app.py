"""One simulator app serving several venues on one port, each in its own dialect.

binance_futures  /fapi/v1/..., /public|market/stream, /public|market/ws/<stream>
binance_spot     /api/v3/..., /stream
kraken           /kraken/v2
bybit            /bybit/v5/public/linear (and /spot, /inverse)
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from marketdata.sim import bybit_server, kraken_server, server, spot_server
from marketdata.sim.bybit_market import BybitSource
from marketdata.sim.kraken_market import KrakenSource
from marketdata.sim.scenarios import Scenario
from marketdata.sim.sources import Source

VENUES = ("binance_futures", "binance_spot", "kraken", "bybit")
PATHS = {
    "binance_futures": server.PATHS,
    "binance_spot": spot_server.PATHS,
    "kraken": kraken_server.PATHS,
    "bybit": bybit_server.PATHS,
}


class VenueError(ValueError):
    """A venue the simulator does not serve, or a source of the wrong kind for it."""


def create_sim_app(
    venues: Mapping[str, Source | KrakenSource],
    scenario: Scenario | Mapping[str, Scenario] | None = None,
    ping_interval_s: float = 180.0,
    heartbeat_s: float = 1.0,
) -> web.Application:
    """`venues`: venue name -> its source (a KrakenSource for "kraken", a BybitSource for
    "bybit"). `scenario`: one for every venue (shared counts and log), or one per venue
    name (none: no faults)."""
    app = web.Application()
    for venue, source in venues.items():
        faults = scenario.get(venue) if isinstance(scenario, Mapping) else scenario
        if venue == "bybit":
            if not isinstance(source, BybitSource):
                raise VenueError(f"venue bybit needs a BybitSource, not {type(source).__name__}")
            bybit_server.create_bybit_routes(app, source, faults)
        elif venue == "kraken":
            if not isinstance(source, KrakenSource) or isinstance(source, BybitSource):
                raise VenueError(f"venue kraken needs a KrakenSource, not {type(source).__name__}")
            kraken_server.create_kraken_routes(app, source, faults, heartbeat_s)
        elif isinstance(source, KrakenSource):
            raise VenueError(f"venue {venue} cannot serve a KrakenSource")
        elif venue == "binance_futures":
            server.add_futures_routes(app, source, ping_interval_s, faults)
        elif venue == "binance_spot":
            spot_server.add_spot_routes(app, source, ping_interval_s, faults)
        else:
            raise VenueError(f"unknown venue {venue!r} (known: {', '.join(VENUES)})")
    return app
