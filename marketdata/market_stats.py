"""Rolling 24 h trade statistics per symbol, in one-minute buckets (bounded memory).

Volume is summed exactly with Decimal; high and low keep the exchange's price text. The
clock is the exchange's own trade time, so a replayed capture rolls as it did live.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from decimal import Decimal

from marketdata.events import Trade

WINDOW_MS = 24 * 3600 * 1000
BUCKET_MS = 60 * 1000


@dataclass(slots=True)
class _Bucket:
    start_ms: int
    volume: Decimal
    high: float
    high_text: str
    low: float
    low_text: str
    count: int


@dataclass(frozen=True, slots=True)
class WindowStats:
    volume: str
    high: str
    low: str
    trades: int
    since_ms: int  # start of the oldest bucket still in the window


class RollingTradeStats:
    def __init__(self, window_ms: int = WINDOW_MS, bucket_ms: int = BUCKET_MS) -> None:
        self._window_ms = window_ms
        self._bucket_ms = bucket_ms
        self._closed: deque[_Bucket] = deque()
        self._closed_volume = Decimal(0)
        self._closed_count = 0
        self._closed_extremes: tuple[_Bucket | None, _Bucket | None] = (None, None)
        self._current: _Bucket | None = None
        self.last_price: str | None = None
        self.last_qty: str | None = None
        self.last_trade_ms = 0

    def add(self, trade: Trade) -> None:
        self.last_price, self.last_qty = trade.price_text, trade.qty_text
        ts = max(trade.exchange_ts, self.last_trade_ms)  # a late trade joins the newest bucket
        self.last_trade_ms = ts
        start = ts - ts % self._bucket_ms
        bucket = self._current
        if bucket is None or start > bucket.start_ms:
            if bucket is not None:
                self._close(bucket)
            bucket = self._current = _Bucket(
                start, Decimal(0), trade.price, trade.price_text, trade.price, trade.price_text, 0
            )
        bucket.volume += Decimal(trade.qty_text)
        bucket.count += 1
        if trade.price > bucket.high:
            bucket.high, bucket.high_text = trade.price, trade.price_text
        if trade.price < bucket.low:
            bucket.low, bucket.low_text = trade.price, trade.price_text

    def window(self) -> WindowStats | None:
        """Stats over the last 24 h of trade time; None before the first trade."""
        current = self._current
        if current is None:
            return None
        self._evict(self.last_trade_ms - self._window_ms)
        high, low = self._closed_extremes
        high = current if high is None or current.high > high.high else high
        low = current if low is None or current.low < low.low else low
        oldest = self._closed[0] if self._closed else current
        return WindowStats(
            volume=format(self._closed_volume + current.volume, "f"),
            high=high.high_text,
            low=low.low_text,
            trades=self._closed_count + current.count,
            since_ms=oldest.start_ms,
        )

    def _close(self, bucket: _Bucket) -> None:
        self._closed.append(bucket)
        self._closed_volume += bucket.volume
        self._closed_count += bucket.count
        high, low = self._closed_extremes
        self._closed_extremes = (
            bucket if high is None or bucket.high > high.high else high,
            bucket if low is None or bucket.low < low.low else low,
        )

    def _evict(self, cutoff_ms: int) -> None:
        evicted = False
        while self._closed and self._closed[0].start_ms + self._bucket_ms <= cutoff_ms:
            bucket = self._closed.popleft()
            self._closed_volume -= bucket.volume
            self._closed_count -= bucket.count
            evicted = True
        if evicted:
            buckets = self._closed
            self._closed_extremes = (
                max(buckets, key=lambda b: b.high, default=None),
                min(buckets, key=lambda b: b.low, default=None),
            )
