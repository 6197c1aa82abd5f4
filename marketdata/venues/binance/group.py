"""Several Binance symbols on two shared connections (`symbols_per_connection` > 1).

Binance's combined streams take up to 1024 streams on one connection, so a large universe
need not open two connections per symbol (and wait out the per-IP connection-rate limit
on every restart). One connection carries the group's depth and bookTicker streams, one
its aggTrade streams; each frame is parsed once and handed to its symbol's SymbolFeed,
which keeps its book, snapshots, audit and trade gaps exactly as it does alone. A dropped
connection resyncs every book of the group, and only those.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Coroutine, Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

from marketdata.backoff import Backoff
from marketdata.connect_pacer import ConnectPacer
from marketdata.feed import WebSocketFeed
from marketdata.skip_log import SkipLog
from marketdata.state import SymbolState
from marketdata.symbol_feed import SymbolFeed, connection_policies
from marketdata.sync import BookSync
from marketdata.venue import FeedContext
from marketdata.venues.base import ExchangeAdapter, MalformedMessage

log = logging.getLogger(__name__)

KINDS = ("book", "trades")


class BinanceGroupFeed:
    def __init__(
        self,
        adapter: ExchangeAdapter,
        symbols: Sequence[str],
        context: FeedContext,
        name: str,
        build: Any,  # (symbol, shared connections) -> SymbolFeed
        pacer: ConnectPacer | None = None,
    ) -> None:
        self.key = name
        self.adapter = adapter
        self._metrics = context.metrics
        self._skip_log = SkipLog()
        reconnect = context.reconnect
        urls = [adapter.stream_urls(s) for s in symbols]
        policies = connection_policies(reconnect, context.stale_after_s)
        self.connections = [
            WebSocketFeed(
                f"{name}:{kind}",
                merge_streams([u[i] for u in urls]),
                context.session,
                self.on_frame,
                self._state_handler(kind),
                Backoff(reconnect.initial_delay_s, reconnect.max_delay_s),
                policies[i],
                self._count_error,
                self._connect_failure_counter(kind),
                pacer,
            )  # fmt: skip
            for i, kind in enumerate(KINDS)
        ]
        self._feeds: dict[str, SymbolFeed] = {s: build(s, self.connections) for s in symbols}
        self._handlers = {
            kind: [feed.connection_state(kind) for feed in self._feeds.values()] for kind in KINDS
        }

    @property
    def states(self) -> list[SymbolState[BookSync]]:
        return [feed.state for feed in self._feeds.values()]

    def tasks(self) -> list[Coroutine[Any, Any, None]]:
        return [c.run() for c in self.connections]

    def readiness(self, now: float, stale_after_s: float) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for feed in self._feeds.values():
            out.update(feed.readiness(now, stale_after_s))
        return out

    def update_gauges(self) -> None:
        for feed in self._feeds.values():
            feed.update_gauges()

    async def close(self) -> None:
        for feed in self._feeds.values():
            await feed.close()

    def on_frame(self, frame: bytes, recv_ts: float) -> None:
        try:
            events = self.adapter.parse(frame, recv_ts)
        except MalformedMessage as e:
            self._skipped(str(e), e.reason, frame)
            return
        now = time.monotonic()
        feeds = self._feeds
        for event in events:
            feed = feeds.get(event.symbol)
            if feed is None:
                self._skipped(f"message for unexpected symbol {event.symbol!r}",
                              "unknown_symbol", frame)  # fmt: skip
                continue
            feed.last_frame_at = now
            feed.on_event(event)

    def _skipped(self, error: str, reason: str, frame: bytes) -> None:
        self._count_error(reason)
        self._skip_log.warn(log, self.key, error, frame)

    def _count_error(self, reason: str) -> None:
        self._metrics.messages_error.labels(reason).inc()

    def _state_handler(self, kind: str) -> Any:
        def on_state(connected: bool) -> None:
            for handler in self._handlers[kind]:
                handler(connected)

        return on_state

    def _connect_failure_counter(self, kind: str) -> Any:
        failures = self._metrics.ws_connect_failures

        def failed(reason: str) -> None:
            for symbol in self._feeds:
                failures.labels(self.adapter.name, symbol, kind, reason).inc()

        return failed


def merge_streams(urls: Sequence[str]) -> str:
    """One combined-stream URL carrying the `streams` of every URL (same base)."""
    first = urlsplit(urls[0])
    streams: list[str] = []
    for url in urls:
        parts = urlsplit(url)
        if (parts.scheme, parts.netloc, parts.path) != (first.scheme, first.netloc, first.path):
            raise ValueError(f"{url} is not on {first.path}: cannot share a connection")
        for value in parse_qs(parts.query).get("streams", []):
            streams += value.split("/")
    return urlunsplit(first._replace(query="streams=" + "/".join(streams)))
