"""One Coinbase connection's subscriptions: what is due, sent, confirmed, failing; the
requests that go out, within the per-IP message budget.

One request per channel, naming all the products due on it; a subscription that has failed
before goes alone (subscriptions.py says why). A level2 resubscribe is an unsubscribe and a
subscribe, two messages of the budget. A level2 that Coinbase lists but whose snapshot has
not come within `timeout_s` fails and is resubscribed, like one never listed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from marketdata.backoff import Backoff
from marketdata.venues.coinbase.subscriptions import (
    HEARTBEATS,
    SendBudget,
    Subscription,
    SubState,
)
from marketdata.venues.coinbase.wire import NAME

log = logging.getLogger(__name__)

PRODUCT_CHANNELS = ("level2", "market_trades", "ticker")
Send = Callable[[str, str, list[str]], Awaitable[bool]]  # (type, channel, product ids)


class Count(Protocol):
    def inc(self, amount: float = 1.0) -> None: ...


class Labelled(Protocol):
    def labels(self, *values: str) -> Count: ...


class Subscriber:
    def __init__(
        self,
        name: str,
        symbols: Sequence[str],
        backoff: Callable[[], Backoff],
        budget: SendBudget,
        timeout_s: float,
        send: Send,
        failures: Labelled,  # subscription_failures
        synced: Callable[[str], bool],  # the product's book is synced
        clock: Callable[[], float],
        wake: Callable[[], None],  # something new is due
    ) -> None:
        self.name = name
        self._symbols = list(symbols)
        self._budget = budget
        self._timeout_s = timeout_s
        self._send = send
        self._failures = failures
        self._synced = synced
        self._clock = clock
        self._wake = wake
        self.heartbeats = Subscription(HEARTBEATS, "", name, backoff())
        self.subs: dict[tuple[str, str], Subscription] = {(HEARTBEATS, ""): self.heartbeats}
        for symbol in symbols:
            for channel in PRODUCT_CHANNELS:
                self.subs[(channel, symbol)] = Subscription(channel, symbol, name, backoff())

    def problems(self, symbol: str) -> list[str]:
        """Why the product's subscriptions (and the connection's heartbeats) are not on."""
        subs = [self.heartbeats] + [self.subs[(c, symbol)] for c in PRODUCT_CHANNELS]
        return [p for sub in subs if (p := sub.problem()) is not None]

    def start_over(self) -> None:
        """A new connection (or none): nothing is subscribed on it."""
        for sub in self.subs.values():
            sub.start_over()
        self._wake()

    def resubscribe_level2(self, symbol: str, at: float) -> None:
        self.subs[("level2", symbol)].resubscribe(at)
        self._wake()

    def snapshot_came(self, symbol: str) -> None:
        """The surest confirmation there is; it also settles a resubscribe not yet sent."""
        sub = self.subs[("level2", symbol)]
        if sub.state is not SubState.CONFIRMED:
            sub.confirm()

    def on_listing(self, channels: dict[str, frozenset[str]]) -> None:
        """A `subscriptions` frame: everything the connection is subscribed to now."""
        for sub in self.subs.values():
            if sub.state is SubState.CONFIRMED:
                continue
            listed = sub.listed_in(channels)
            if sub.unlisted_first:
                if not listed:
                    sub.unlisted_first = False  # the unsubscribe took effect
            elif listed and not sub.unsubscribe_first:
                sub.confirm()  # sent, or failed although Coinbase took it after all
        self._wake()

    def on_error(self, message: str) -> None:
        """An `error` frame names no request: every one waiting has failed."""
        waiting = [sub for sub in self.subs.values() if sub.state is SubState.SENT]
        log.warning("%s: Coinbase error: %s (%d subscriptions waiting)", self.name, message,
                    len(waiting))  # fmt: skip
        for sub in waiting:
            self._failed(sub, "rejected", f"rejected: {message}")

    def _failed(self, sub: Subscription, reason: str, cause: str) -> None:
        sub.fail(self._clock(), cause)
        symbols = self._symbols if sub.channel == HEARTBEATS else [sub.symbol]
        for symbol in symbols:
            self._failures.labels(NAME, symbol, sub.channel, reason).inc()
        self._wake()

    async def send_due(self, now: float) -> float:
        """Send what is due (within the budget); when the next falls due or times out."""
        timeout = self._timeout_s
        next_at = now + timeout
        due: list[Subscription] = []
        for sub in self.subs.values():
            if sub.state is SubState.SENT:
                if now - sub.sent_at >= timeout:
                    self._failed(sub, "timeout", f"no confirmation within {timeout:g}s")
                else:
                    next_at = min(next_at, sub.sent_at + timeout)
            elif sub.state is SubState.CONFIRMED:
                next_at = min(next_at, self._awaits_snapshot(sub, now))
            elif sub.retry_at > now:
                next_at = min(next_at, sub.retry_at)
            else:
                due.append(sub)
        for request in _requests(due):
            needed = 2 if any(sub.unsubscribe_first for sub in request) else 1
            if self._budget.free(now) < needed:
                return min(next_at, self._budget.next_free_at(now))
            await self._send_request(request, now)
        return next_at

    def _awaits_snapshot(self, sub: Subscription, now: float) -> float:
        """A level2 listed with no snapshot after the timeout fails (and is resubscribed);
        when to look again."""
        timeout = self._timeout_s
        if sub.channel != "level2" or self._synced(sub.symbol):
            return now + timeout
        if now - sub.sent_at < timeout:
            return sub.sent_at + timeout
        self._failed(sub, "no_snapshot", f"no snapshot within {timeout:g}s of subscribing")
        sub.unsubscribe_first = True
        return now + timeout

    async def _send_request(self, subs: list[Subscription], now: float) -> None:
        channel = subs[0].channel
        products = self._symbols if channel == HEARTBEATS else [s.symbol for s in subs]
        again = [s for s in subs if s.unsubscribe_first]
        if again:
            self._budget.take(now)
            if not await self._send("unsubscribe", channel, [s.symbol for s in again]):
                return  # the connection went: its start_over begins them again
            for sub in again:
                sub.unsubscribe_first = False
                sub.unlisted_first = True
        self._budget.take(now)
        for sub in subs:
            sub.state, sub.sent_at = SubState.SENT, now
        if not await self._send("subscribe", channel, list(products)):
            for sub in subs:
                sub.state = SubState.IDLE


def _requests(due: list[Subscription]) -> list[list[Subscription]]:
    """One request per channel; one that has failed before goes alone, so a product
    Coinbase refuses cannot take the others of its channel down with it."""
    grouped: dict[str, list[Subscription]] = {}
    alone: list[list[Subscription]] = []
    for sub in due:
        if sub.outage.active:
            alone.append([sub])
        else:
            grouped.setdefault(sub.channel, []).append(sub)
    return list(grouped.values()) + alone
