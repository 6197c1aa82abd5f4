"""One OKX connection with its own books and subscriptions. A feed has one; during a
handover (64008) it has two for a while, each keeping books of its own."""

from __future__ import annotations

from typing import Protocol

from marketdata.backoff import Backoff
from marketdata.connect_pacer import ConnectPacer
from marketdata.feed import ConnectionPolicy, WebSocketFeed
from marketdata.venue import FeedContext
from marketdata.venues.okx.book_state import OkxBook
from marketdata.venues.okx.config import OkxConfig
from marketdata.venues.okx.subscriptions import Subscription, Subscriptions


class LinkOwner(Protocol):
    """What a connection needs of its feed."""

    config: OkxConfig
    context: FeedContext
    symbols: list[str]
    channels: list[str]
    policy: ConnectionPolicy
    pacer: ConnectPacer | None

    def backoff(self) -> Backoff: ...
    def on_frame(self, link: Link, frame: bytes, recv_ts: float) -> None: ...
    def on_state(self, link: Link, connected: bool) -> None: ...
    def count_error(self, reason: str) -> None: ...
    def connect_failed(self, reason: str) -> None: ...
    def subscription_failed(self, sub: Subscription, reason: str, cause: str) -> None: ...


class Link:
    def __init__(self, feed: LinkOwner, name: str) -> None:
        config = feed.config
        rest = config.snapshot == "rest"
        self.books = {s: OkxBook(s, rest) for s in feed.symbols}
        subs = [
            Subscription(channel, s, name, feed.backoff())
            for s in feed.symbols
            for channel in feed.channels
        ]
        self.subs = Subscriptions(subs, config.subscribe_timeout_s, feed.subscription_failed)
        self.last_frame_at: float | None = None
        self.next_ping = 0.0
        self.connection = WebSocketFeed(
            name, config.ws_url, feed.context.session,
            lambda frame, recv_ts: feed.on_frame(self, frame, recv_ts),
            lambda connected: feed.on_state(self, connected),
            feed.backoff(), feed.policy, feed.count_error, feed.connect_failed, feed.pacer,
        )  # fmt: skip

    @property
    def synced(self) -> bool:
        return all(book.synced for book in self.books.values())
