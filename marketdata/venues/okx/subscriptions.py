"""One OKX connection's channel subscriptions: what is due, what was sent, what the replies
say. No I/O: the caller sends the requests `due` returns.

OKX confirms each channel of a request by itself (`{"event": "subscribe", "arg": {...}}`),
but an `{"event": "error", ...}` need not say which argument it refuses. Requests are kept
in the order they were sent, each with the channels still unanswered: an error that names
an instrument of the oldest request fails those channels; one that names none fails the
oldest request's. Every subscription not confirmed within the timeout is failed too; a
failed one is sent again after its backoff, and its cause is on /ready meanwhile.

OKX allows 480 subscribe, unsubscribe and login requests per hour per connection:
SubscribeBudget counts them exactly, and a request that would pass it waits (so a storm of
resyncs backs off instead of losing the connection).
"""

from __future__ import annotations

import enum
import logging
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from marketdata.backoff import Backoff
from marketdata.outage import Outage
from marketdata.venues.okx.wire import ErrorReply, Reply

log = logging.getLogger(__name__)

REQUESTS_PER_HOUR = 480
MAX_ARGS_PER_REQUEST = 20  # channels in one request; keeps each frame small
Key = tuple[str, str]  # (channel, instId)


class SubState(enum.Enum):
    IDLE = "idle"  # to be sent (at retry_at)
    SENT = "sent"  # waiting for its reply
    CONFIRMED = "confirmed"


class Subscription:
    """One channel of one instrument, kept subscribed."""

    __slots__ = (
        "backoff", "channel", "inst_id", "outage", "retry_at", "sent_at", "state",
        "unsubscribe_first",
    )  # fmt: skip

    def __init__(self, channel: str, inst_id: str, feed_name: str, backoff: Backoff) -> None:
        self.channel = channel
        self.inst_id = inst_id
        self.state = SubState.IDLE
        self.sent_at = 0.0
        self.retry_at = 0.0
        self.backoff = backoff
        self.unsubscribe_first = False  # a resync: unsubscribe before subscribing again
        self.outage = Outage(f"{feed_name}: {channel} subscription of {inst_id}", log)

    def problem(self) -> str | None:
        if self.outage.active:
            return f"{self.channel} subscribe failing: {self.outage.cause}"
        if self.state is not SubState.CONFIRMED:
            return f"{self.channel} subscription not confirmed yet"
        return None


class SubscribeBudget:
    """At most `limit` requests in any `window_s` (OKX: 480 an hour per connection)."""

    def __init__(self, limit: int = REQUESTS_PER_HOUR, window_s: float = 3600.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._sent: deque[float] = deque()

    def _expire(self, now: float) -> None:
        while self._sent and self._sent[0] <= now - self.window_s:
            self._sent.popleft()

    def left(self, now: float) -> int:
        self._expire(now)
        return self.limit - len(self._sent)

    def free_at(self, now: float, count: int = 1) -> float:
        """When `count` more requests may go."""
        self._expire(now)
        excess = len(self._sent) + count - self.limit
        return now if excess <= 0 else self._sent[excess - 1] + self.window_s

    def take(self, now: float) -> None:
        self._sent.append(now)


@dataclass
class Request:
    """One request frame to send, and the subscriptions it carries."""

    op: str  # "subscribe" | "unsubscribe"
    subs: list[Subscription]
    waiting: set[Key] = field(default_factory=set)  # channels not answered yet

    def unanswered(self) -> list[Key]:
        """The channels still waiting for a reply, in the order they were asked."""
        keys = ((s.channel, s.inst_id) for s in self.subs)
        return [k for k in keys if k in self.waiting]

    def frame(self) -> dict[str, Any]:
        args = [{"channel": s.channel, "instId": s.inst_id} for s in self.subs]
        return {"op": self.op, "args": args}


Failed = Callable[[Subscription, str, str], None]  # (sub, reason label, cause)


class Subscriptions:
    def __init__(
        self,
        subs: list[Subscription],
        timeout_s: float,
        on_failed: Failed,
        budget: SubscribeBudget | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self.subs = {(s.channel, s.inst_id): s for s in subs}
        self.timeout_s = timeout_s
        self.budget = budget or SubscribeBudget()
        self._on_failed = on_failed
        self._requests: deque[Request] = deque()  # sent, some channel still unanswered
        self.refused_until = 0.0  # > now while the budget holds requests back

    def reset(self) -> None:
        """A new connection: everything is sent again, on a fresh budget."""
        self._requests.clear()
        self.budget = SubscribeBudget(self.budget.limit, self.budget.window_s)
        for sub in self.subs.values():
            sub.state, sub.retry_at, sub.unsubscribe_first = SubState.IDLE, 0.0, False

    def resubscribe(self, key: Key, retry_at: float) -> None:
        """Unsubscribe and subscribe `key` again, not before `retry_at` (a book resync)."""
        sub = self.subs[key]
        if sub.state is SubState.CONFIRMED:
            sub.state, sub.retry_at, sub.unsubscribe_first = SubState.IDLE, retry_at, True

    def due(self, now: float) -> tuple[list[Request], float]:
        """The requests to send now (marked sent), and when to look again."""
        next_at = now + self.timeout_s
        ready: list[Subscription] = []
        for sub in self.subs.values():
            if sub.state is SubState.SENT:
                if now - sub.sent_at >= self.timeout_s:
                    self._fail(sub, "timeout", f"no reply within {self.timeout_s:g}s", now)
                    next_at = min(next_at, sub.retry_at)
                else:
                    next_at = min(next_at, sub.sent_at + self.timeout_s)
            elif sub.state is SubState.IDLE:
                if sub.retry_at > now:
                    next_at = min(next_at, sub.retry_at)
                else:
                    ready.append(sub)
        requests = self._requests_for(ready, now)
        if len(requests) < self._needed(ready):
            if self.refused_until <= now:
                log.warning("subscribe requests held back: %d sent in the last hour, as many "
                            "as OKX allows per connection", self.budget.limit)  # fmt: skip
            self.refused_until = self.budget.free_at(now, 2)
            next_at = min(next_at, max(self.refused_until, now + 0.001))
        return requests, next_at

    @staticmethod
    def _needed(ready: list[Subscription]) -> int:
        """Requests `ready` takes: per chunk a subscribe, and an unsubscribe before it
        when the chunk holds a resync."""
        chunks = (
            ready[i : i + MAX_ARGS_PER_REQUEST] for i in range(0, len(ready), MAX_ARGS_PER_REQUEST)
        )
        return sum(2 if any(s.unsubscribe_first for s in chunk) else 1 for chunk in chunks)

    def _requests_for(self, ready: list[Subscription], now: float) -> list[Request]:
        out: list[Request] = []
        for i in range(0, len(ready), MAX_ARGS_PER_REQUEST):
            chunk = ready[i : i + MAX_ARGS_PER_REQUEST]
            again = [s for s in chunk if s.unsubscribe_first]
            if self.budget.left(now) < (2 if again else 1):
                break
            if again:
                self.budget.take(now)
                out.append(self._sent(Request("unsubscribe", again), now))
                for sub in again:
                    sub.unsubscribe_first = False
            self.budget.take(now)
            out.append(self._sent(Request("subscribe", chunk), now))
            for sub in chunk:
                sub.state, sub.sent_at = SubState.SENT, now
        return out

    def _sent(self, request: Request, now: float) -> Request:
        request.waiting = {(s.channel, s.inst_id) for s in request.subs}
        self._requests.append(request)
        return request

    def not_sent(self, request: Request) -> None:
        """The connection went before `request` could go (its reset starts them over)."""
        for sub in request.subs:
            if sub.state is SubState.SENT:
                sub.state = SubState.IDLE

    def on_reply(self, reply: Reply) -> None:
        key = (reply.channel, reply.inst_id or "")
        for request in self._requests:
            if request.op == reply.event and key in request.waiting:
                request.waiting.discard(key)
                break
        self._forget_answered()
        sub = self.subs.get(key)
        if reply.event == "subscribe" and sub is not None and sub.state is SubState.SENT:
            sub.state = SubState.CONFIRMED
            sub.backoff.reset()
            sub.outage.ok()

    def on_error(self, error: ErrorReply) -> None:
        """Fail the channels the error names, else the oldest request's unanswered ones."""
        cause = f"rejected: {error.code} {error.msg}".strip()
        for request in self._requests:
            named = [k for k in request.unanswered() if k[1] and _names(error.msg, k[1])]
            if named:
                break
        else:
            if not self._requests:
                log.warning("OKX error with no request waiting: %s", cause)
                return
            request = self._requests[0]
            named = request.unanswered()
        for key in named:
            request.waiting.discard(key)
            sub = self.subs.get(key)
            if request.op == "subscribe" and sub is not None and sub.state is SubState.SENT:
                self._fail(sub, "rejected", cause, self._clock())
        self._forget_answered()

    def _forget_answered(self) -> None:
        while self._requests and not self._requests[0].waiting:
            self._requests.popleft()
        if len(self._requests) > 1000:  # replies that never come: keep the newest
            self._requests = deque(list(self._requests)[-1000:])

    def _fail(self, sub: Subscription, reason: str, cause: str, now: float) -> None:
        sub.state = SubState.IDLE
        sub.retry_at = now + sub.backoff.next_delay()
        sub.outage.fail(cause)
        self._on_failed(sub, reason, cause)

    def problems(self, inst_id: str) -> list[str]:
        return [
            p for (_, inst), sub in self.subs.items()
            if inst == inst_id and (p := sub.problem()) is not None
        ]  # fmt: skip


def _names(text: str, inst_id: str) -> bool:
    """`text` names `inst_id` as a whole (BTC-USD is not named by BTC-USDT)."""
    pattern = rf"(?<![A-Za-z0-9-]){re.escape(inst_id)}(?![A-Za-z0-9-])"
    return re.search(pattern, text) is not None
