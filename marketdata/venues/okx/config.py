"""The `exchanges.okx` section."""

from __future__ import annotations

from dataclasses import dataclass

from marketdata.exchange_config import ExchangeConfig, check_range
from marketdata.venues.okx.wire import REST_URL, WS_URL

BOOK_LEVELS = 400  # the `books` channel
SNAPSHOT_MODES = ("in_band", "rest")
TOP_OF_BOOK_CHANNELS = ("none", "bbo-tbt")
# OKX caps a connection at 480 subscribe requests an hour, not its channels; 100
# instruments (300 channels, sent 20 per request) keep a resubscribe of all of them cheap.
MAX_SYMBOLS_PER_CONNECTION = 100


@dataclass(frozen=True)
class OkxConfig(ExchangeConfig):
    """OKX v5 public: `books` (400 levels) checked by seqId chain and/or checksum, `trades`."""

    ws_url: str = WS_URL
    rest_url: str = REST_URL  # /api/v5/market/books, for snapshot: rest
    snapshot: str = "in_band"  # in_band: the subscription's snapshot; rest: REST + seqId
    symbols_per_connection: int = 1
    ping_interval_s: float = 20.0  # text `ping`; OKX cuts a connection silent for 30 s
    subscribe_timeout_s: float = 10.0  # an unanswered subscribe is sent again after this
    top_of_book: str = "none"  # "bbo-tbt": also subscribe the tick-by-tick best bid/offer

    def check(self, path: str, book_depth: int, problems: list[str]) -> None:
        super().check(path, book_depth, problems)
        if self.snapshot not in SNAPSHOT_MODES:
            problems.append(
                f"{path}.snapshot: {self.snapshot!r} is not one of {', '.join(SNAPSHOT_MODES)}"
            )
        if self.top_of_book not in TOP_OF_BOOK_CHANNELS:
            problems.append(
                f"{path}.top_of_book: {self.top_of_book!r} is not one of "
                f"{', '.join(TOP_OF_BOOK_CHANNELS)}"
            )
        if book_depth > BOOK_LEVELS:
            problems.append(
                f"{path}: book_depth {book_depth} is above the {BOOK_LEVELS} levels of OKX's "
                "books channel; published levels would be missing"
            )
        check_range(
            self.symbols_per_connection, f"{path}.symbols_per_connection", 1,
            MAX_SYMBOLS_PER_CONNECTION, problems,
        )  # fmt: skip
        check_range(self.ping_interval_s, f"{path}.ping_interval_s", 1, 29, problems)
        check_range(self.subscribe_timeout_s, f"{path}.subscribe_timeout_s", 0.1, 600, problems)
