"""The `exchanges.coinbase` config section."""

from __future__ import annotations

from dataclasses import dataclass

from marketdata.exchange_config import ExchangeConfig, check_range
from marketdata.venues.coinbase.book_state import DEFAULT_MAX_LEVELS
from marketdata.venues.coinbase.top_check import DEFAULT_MAX_MISMATCHES, DEFAULT_REACH
from marketdata.venues.coinbase.wire import WS_URL

# Coinbase documents no cap on products per connection; a sequence gap resyncs every
# product of its connection, so groups stay small. One product per connection by default.
MAX_SYMBOLS_PER_CONNECTION = 100
# The recording's largest frame is BTC-USD's level2 snapshot, 5,079,379 bytes (ETH-USD's
# 2,531,647): 32 MiB leaves room for a book six times as deep. Anything larger still ends
# the connection (the oversize guard), as a frame cannot be skipped.
DEFAULT_MAX_FRAME_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class CoinbaseConfig(ExchangeConfig):
    """Coinbase Advanced Trade market data: in-band level2 snapshots, checked by the
    connection's sequence_num."""

    ws_url: str = WS_URL
    rest_url: str = "https://api.coinbase.com"  # not used: the REST book has no update id
    symbols_per_connection: int = 1
    subscribe_timeout_s: float = 10.0  # an unconfirmed subscribe is sent again after this
    messages_per_second: float = 5.0  # sends per connection; Coinbase allows 8/s per IP
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    max_levels: int = DEFAULT_MAX_LEVELS  # per side; more resyncs the product
    top_check_reach: int = DEFAULT_REACH  # book events either side of a ticker
    top_check_mismatches: int = DEFAULT_MAX_MISMATCHES  # tickers in a row: resync

    def check(self, path: str, book_depth: int, problems: list[str]) -> None:
        super().check(path, book_depth, problems)
        for i, symbol in enumerate(self.symbols):
            if symbol.count("-") != 1:
                problems.append(f"{path}.symbols[{i}]: {symbol!r} is not a product like BTC-USD")
        check_range(
            self.symbols_per_connection, f"{path}.symbols_per_connection", 1,
            MAX_SYMBOLS_PER_CONNECTION, problems,
        )  # fmt: skip
        check_range(self.subscribe_timeout_s, f"{path}.subscribe_timeout_s", 0.1, 600, problems)
        check_range(self.messages_per_second, f"{path}.messages_per_second", 0.1, 8, problems)
        check_range(self.max_frame_bytes, f"{path}.max_frame_bytes", 1 << 20, 1 << 30, problems)
        check_range(self.max_levels, f"{path}.max_levels", 1000, 10_000_000, problems)
        check_range(self.top_check_reach, f"{path}.top_check_reach", 1, 1000, problems)
        check_range(self.top_check_mismatches, f"{path}.top_check_mismatches", 1, 1000, problems)
