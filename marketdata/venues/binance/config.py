"""The config sections of Binance USD-M futures and Binance spot."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import ClassVar

from marketdata.book import DEFAULT_MAX_LEVELS
from marketdata.capped_read import DEFAULT_MAX_SNAPSHOT_BYTES
from marketdata.exchange_config import ExchangeConfig, check_range
from marketdata.rest_gate import BUDGET_FRACTION
from marketdata.venues.binance import futures as binance_futures
from marketdata.venues.binance import spot as binance_spot

# Binance allows 1024 streams on one connection; a symbol's book connection carries two
# (depth and bookTicker). 200 keeps one connection's URL and its resync burst moderate.
MAX_SYMBOLS_PER_CONNECTION = 200


@dataclass(frozen=True)
class BinanceConfig(ExchangeConfig):
    """A Binance venue: REST snapshots bridged by update ids, audited by bookTicker."""

    snapshot_limits: ClassVar[Collection[int]] = ()  # the venue's allowed depth limits
    snapshot_limit: int = 1000
    # Resync a book whose top disagrees with bookTicker this many comparisons in a row; 0: off.
    top_audit_mismatches: int = 3
    max_levels_per_side: int = DEFAULT_MAX_LEVELS  # past it the book is rebuilt
    max_snapshot_bytes: int = DEFAULT_MAX_SNAPSHOT_BYTES  # a larger snapshot body is refused
    # Symbols sharing one book and one trade connection (1: each its own two).
    symbols_per_connection: int = 1
    # REST request weight per minute per IP: the venue's documented figure by default
    # (each venue's section below); lower it for an account with another limit, or a test.
    rest_weight_per_min: int = binance_futures.WEIGHT_LIMIT_PER_MIN

    def snapshot_weight(self) -> int:
        """The weight of one snapshot request at a valid snapshot_limit."""
        return binance_futures.SNAPSHOT_WEIGHTS[self.snapshot_limit]

    def agg_trades_weight(self) -> int:
        return binance_futures.AGG_TRADES_WEIGHT

    def check(self, path: str, book_depth: int, problems: list[str]) -> None:
        super().check(path, book_depth, problems)
        if self.snapshot_limit not in self.snapshot_limits:
            problems.append(f"{path}.snapshot_limit: {self._not_allowed()}")
        elif book_depth > self.snapshot_limit:
            problems.append(
                f"{path}.snapshot_limit: {self.snapshot_limit} is below book_depth "
                f"{book_depth}; published levels would be missing"
            )
        check_range(self.top_audit_mismatches, f"{path}.top_audit_mismatches", 0, 1000, problems)
        check_range(self.max_levels_per_side, f"{path}.max_levels_per_side", 1, 10**6, problems)
        if self.max_levels_per_side < 2 * self.snapshot_limit:
            problems.append(
                f"{path}.max_levels_per_side: {self.max_levels_per_side} leaves no room above "
                f"snapshot_limit {self.snapshot_limit} (diffs add levels beyond the snapshot, "
                f"and a book at the cap is rebuilt); use at least {2 * self.snapshot_limit}"
            )
        check_range(
            self.max_snapshot_bytes, f"{path}.max_snapshot_bytes", 65_536, 1 << 30, problems
        )
        check_range(
            self.symbols_per_connection, f"{path}.symbols_per_connection", 1,
            MAX_SYMBOLS_PER_CONNECTION, problems,
        )  # fmt: skip
        self._check_weight(path, problems)

    def _check_weight(self, path: str, problems: list[str]) -> None:
        key = f"{path}.rest_weight_per_min"
        check_range(self.rest_weight_per_min, key, 1, 10**7, problems)
        if self.snapshot_limit not in self.snapshot_limits:
            return
        budget = int(self.rest_weight_per_min * BUDGET_FRACTION)
        heaviest = max(self.snapshot_weight(), self.agg_trades_weight())
        if 0 < self.rest_weight_per_min and budget < heaviest:
            problems.append(
                f"{key}: {self.rest_weight_per_min} leaves a budget of {budget} a minute "
                f"({BUDGET_FRACTION:.0%}), less than one request of weight {heaviest} (a "
                f"snapshot at snapshot_limit {self.snapshot_limit}, or a page of past trades)"
            )

    def _not_allowed(self) -> str:
        allowed, limit = self.snapshot_limits, self.snapshot_limit
        if isinstance(allowed, range):
            return f"{limit} is outside {allowed.start}..{allowed.stop - 1}"
        return f"{limit} is not one of {', '.join(map(str, allowed))}"


@dataclass(frozen=True)
class BinanceFuturesConfig(BinanceConfig):
    snapshot_limits: ClassVar[Collection[int]] = binance_futures.SNAPSHOT_LIMITS
    ws_url: str = binance_futures.DEFAULT_WS_URL
    rest_url: str = binance_futures.DEFAULT_REST_URL


@dataclass(frozen=True)
class BinanceSpotConfig(BinanceConfig):
    snapshot_limits: ClassVar[Collection[int]] = range(
        binance_spot.MIN_SNAPSHOT_LIMIT, binance_spot.MAX_SNAPSHOT_LIMIT + 1
    )
    ws_url: str = binance_spot.DEFAULT_WS_URL
    rest_url: str = binance_spot.DEFAULT_REST_URL
    rest_weight_per_min: int = binance_spot.WEIGHT_LIMIT_PER_MIN

    def snapshot_weight(self) -> int:
        return binance_spot.snapshot_weight(self.snapshot_limit)

    def agg_trades_weight(self) -> int:
        return binance_spot.AGG_TRADES_WEIGHT
