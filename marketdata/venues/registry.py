"""Every venue the service can run, by its name under `exchanges:` in the config."""

from __future__ import annotations

from marketdata.venue import Venue
from marketdata.venues.binance.futures import BinanceFutures
from marketdata.venues.binance.spot import BinanceSpot
from marketdata.venues.binance.venue import BinanceVenue
from marketdata.venues.bybit.venue import BybitVenue
from marketdata.venues.coinbase.venue import CoinbaseVenue
from marketdata.venues.kraken.venue import KrakenVenue
from marketdata.venues.okx.venue import OkxVenue

VENUES: dict[str, Venue] = {
    "binance_futures": BinanceVenue("binance_futures", BinanceFutures),
    "binance_spot": BinanceVenue("binance_spot", BinanceSpot),
    "bybit": BybitVenue(),
    "coinbase": CoinbaseVenue(),
    "kraken": KrakenVenue(),
    "okx": OkxVenue(),
}
