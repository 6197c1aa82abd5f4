"""What a Coinbase connection keeps subscribed, and the pace its requests go out at.

Coinbase answers every subscribe and unsubscribe with a `subscriptions` frame listing all
the connection is subscribed to (channel -> products), not with a reply to one request,
and a rejected request with `{"type": "error", "message": ...}` that names neither channel
nor product. So a subscription is confirmed when a listing shows it (or, for level2, when
its snapshot comes), and an error fails every request still waiting. A failed request is
sent again, alone, after a backoff, so one product Coinbase refuses cannot keep the others
of its channel from being subscribed.

A resubscribe (unsubscribe, then subscribe) waits for a listing without the product
before one with it counts: a listing sent before the unsubscribe took effect would
otherwise confirm it.
"""

from __future__ import annotations

import enum
import logging
import math
from collections import deque

from marketdata.backoff import Backoff
from marketdata.outage import Outage

log = logging.getLogger(__name__)

HEARTBEATS = "heartbeats"  # one subscription per connection, listed as ["heartbeats"]


class SubState(enum.Enum):
    IDLE = "idle"  # to be sent (at retry_at)
    SENT = "sent"  # waiting for a listing
    CONFIRMED = "confirmed"


class Subscription:
    """One channel of one product (or the connection's heartbeats), kept subscribed."""

    __slots__ = (
        "backoff", "channel", "outage", "retry_at", "sent_at", "state", "symbol",
        "unlisted_first", "unsubscribe_first",
    )  # fmt: skip

    def __init__(self, channel: str, symbol: str, feed_name: str, backoff: Backoff) -> None:
        self.channel = channel
        self.symbol = symbol  # "" for heartbeats
        self.state = SubState.IDLE
        self.sent_at = 0.0
        self.retry_at = 0.0
        self.backoff = backoff
        self.unsubscribe_first = False  # a resubscribe: send an unsubscribe before it
        self.unlisted_first = False  # sent as a resubscribe: wait for a listing without it
        what = f"{feed_name}: {channel} subscription" + (f" of {symbol}" if symbol else "")
        self.outage = Outage(what, log)

    def problem(self) -> str | None:
        if self.outage.active:
            return f"{self.channel} subscribe failing: {self.outage.cause}"
        if self.state is not SubState.CONFIRMED:
            return f"{self.channel} subscription not confirmed yet"
        return None

    def listed_in(self, channels: dict[str, frozenset[str]]) -> bool:
        products = channels.get(self.channel)
        if products is None:
            return False
        return self.channel == HEARTBEATS or self.symbol in products

    def confirm(self) -> None:
        """Subscribed. For level2 a snapshot also confirms a resubscribe not yet sent: a
        snapshot after whatever was lost makes the book whole again."""
        self.state = SubState.CONFIRMED
        self.unsubscribe_first = self.unlisted_first = False
        self.backoff.reset()
        self.outage.ok()

    def start_over(self) -> None:
        """A new connection: nothing is subscribed on it."""
        self.state = SubState.IDLE
        self.retry_at = 0.0
        self.unsubscribe_first = self.unlisted_first = False

    def fail(self, now: float, cause: str) -> None:
        self.state = SubState.IDLE
        self.unlisted_first = False
        self.retry_at = now + self.backoff.next_delay()
        self.outage.fail(cause)

    def resubscribe(self, at: float) -> None:
        """Ask again (for a new snapshot) at `at`; unsubscribe first if it may be on."""
        if self.state is not SubState.IDLE:
            self.unsubscribe_first = True
        self.state = SubState.IDLE
        self.unlisted_first = False
        self.retry_at = max(self.retry_at, at)


class SendBudget:
    """At most `rate` requests in any second, shared by a venue's connections (Coinbase
    allows 8 unauthenticated messages per second per IP)."""

    def __init__(self, rate: float) -> None:
        self.limit = max(1, math.floor(rate))
        self._sent: deque[float] = deque()

    def free(self, now: float) -> int:
        """How many requests may go out at `now`."""
        sent = self._sent
        while sent and sent[0] <= now - 1.0:
            sent.popleft()
        return self.limit - len(sent)

    def take(self, now: float) -> None:
        self._sent.append(now)

    def next_free_at(self, now: float) -> float:
        return self._sent[0] + 1.0 if self.free(now) <= 0 else now
