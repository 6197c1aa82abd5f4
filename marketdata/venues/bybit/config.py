"""The `exchanges.bybit` config section."""

from __future__ import annotations

from dataclasses import dataclass

from marketdata.exchange_config import ExchangeConfig, check_range
from marketdata.venues.bybit.book_state import DEPTHS
from marketdata.venues.bybit.wire import CATEGORIES, ws_url

# Bybit documents no cap on topics per connection; 100 symbols (200 topics) keeps one
# connection's resubscribes and its loss small. Per-symbol connections are the default.
MAX_SYMBOLS_PER_CONNECTION = 100


@dataclass(frozen=True)
class BybitConfig(ExchangeConfig):
    """Bybit v5 public streams of one category: in-band snapshots, deltas chained by `u`.

    `ws_url` left empty is the category's public stream
    (`wss://stream.bybit.com/v5/public/linear`).
    """

    category: str = "linear"  # spot, linear (USDT/USDC contracts) or inverse
    rest_url: str = "https://api.bybit.com"  # not used yet: the book has no REST bridge
    # orderbook.{depth}: 200 is what the recorded capture validated; on linear and inverse
    # it is pushed every 100 ms (50: every 20 ms, five times the messages for levels no one
    # publishes past book_depth), and it covers any book_depth up to 200.
    depth: int = 200
    symbols_per_connection: int = 1
    ping_interval_s: float = 20.0  # {"op": "ping"}, as Bybit asks
    subscribe_timeout_s: float = 10.0  # an unanswered subscribe is sent again after this

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.ws_url and self.category in CATEGORIES:
            object.__setattr__(self, "ws_url", ws_url(self.category))

    def check(self, path: str, book_depth: int, problems: list[str]) -> None:
        if self.category not in CATEGORIES:
            allowed = ", ".join(CATEGORIES)
            problems.append(f"{path}.category: {self.category!r} is not one of {allowed}")
            if not self.ws_url:
                return  # no URL to check: it would have come from the category
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
        check_range(self.ping_interval_s, f"{path}.ping_interval_s", 1, 600, problems)
        check_range(self.subscribe_timeout_s, f"{path}.subscribe_timeout_s", 0.1, 600, problems)
