"""The `exchanges.kraken` config section."""

from __future__ import annotations

from dataclasses import dataclass

from marketdata.exchange_config import ExchangeConfig, check_range
from marketdata.venues.kraken.book_state import DEPTHS
from marketdata.venues.kraken.wire import WS_URL

# Kraken documents no cap on pairs per connection or per subscribe; 100 keeps one
# connection's resubscribes and its loss small. Per-symbol connections are the default.
MAX_SYMBOLS_PER_CONNECTION = 100


@dataclass(frozen=True)
class KrakenConfig(ExchangeConfig):
    """Kraken spot over WebSocket v2: in-band snapshots, checked by CRC32 checksums."""

    ws_url: str = WS_URL
    rest_url: str = "https://api.kraken.com"  # not used yet: the book has no REST bridge
    depth: int = 100  # book subscription depth: 10, 25, 100, 500 or 1000
    symbols_per_connection: int = 1
    ping_interval_s: float = 30.0  # application ping ({"method": "ping"})
    subscribe_timeout_s: float = 10.0  # an unanswered subscribe is sent again after this

    def check(self, path: str, book_depth: int, problems: list[str]) -> None:
        super().check(path, book_depth, problems)
        if self.depth not in DEPTHS:
            allowed = ", ".join(map(str, DEPTHS))
            problems.append(f"{path}.depth: {self.depth} is not one of {allowed}")
        elif book_depth > self.depth:
            problems.append(
                f"{path}.depth: {self.depth} is below book_depth {book_depth}; "
                "published levels would be missing"
            )
        check_range(
            self.symbols_per_connection, f"{path}.symbols_per_connection", 1,
            MAX_SYMBOLS_PER_CONNECTION, problems,
        )  # fmt: skip
        check_range(self.ping_interval_s, f"{path}.ping_interval_s", 1, 3600, problems)
        check_range(self.subscribe_timeout_s, f"{path}.subscribe_timeout_s", 0.1, 600, problems)
