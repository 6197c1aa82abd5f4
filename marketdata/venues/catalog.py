"""Every venue's config section, by the name it has under `exchanges:` in the config.

This only names config types, so that reading a config needs no venue's network code; the
feeds each venue builds are in marketdata.venues.registry.
"""

from __future__ import annotations

from marketdata.exchange_config import ExchangeConfig
from marketdata.venues.binance.config import BinanceFuturesConfig, BinanceSpotConfig
from marketdata.venues.bybit.config import BybitConfig
from marketdata.venues.coinbase.config import CoinbaseConfig
from marketdata.venues.kraken.config import KrakenConfig
from marketdata.venues.okx.config import OkxConfig

VENUE_CONFIGS: dict[str, type[ExchangeConfig]] = {
    "binance_futures": BinanceFuturesConfig,
    "binance_spot": BinanceSpotConfig,
    "bybit": BybitConfig,
    "coinbase": CoinbaseConfig,
    "kraken": KrakenConfig,
    "okx": OkxConfig,
}
