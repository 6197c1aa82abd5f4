"""Bybit topics kept subscribed: request batches within Bybit's limits, and which topics a
reply is about. Pure, no I/O.

Limits (exchanges.md §5): the `args` of one request at most 21,000 characters, and on spot
at most 10 args per request. A reply names its request by `req_id` only; a failure may
name a topic in `ret_msg` ("error:already subscribed,topic:orderbook.200.BTCUSDT") or
not ("Params Error", "error:handler not found").
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Iterator, Sequence

import orjson

from marketdata.backoff import Backoff
from marketdata.outage import Outage

log = logging.getLogger(__name__)

MAX_ARGS_CHARS = 21_000  # the JSON text of one request's `args`
SPOT_MAX_ARGS = 10
ALREADY_SUBSCRIBED = "already subscribed"
_TOKENS = re.compile(r"[^,:;\s\[\]\"']+")


class SubState(enum.Enum):
    IDLE = "idle"  # to be sent (at retry_at)
    SENT = "sent"  # waiting for its reply
    CONFIRMED = "confirmed"


class Verdict(enum.Enum):
    CONFIRMED = "confirmed"
    REJECTED = "rejected"  # retried with backoff, in a request of its own if it shared one
    ASK_AGAIN = "ask_again"  # another topic of its request failed: its own fate is unknown


class Subscription:
    """One topic (`orderbook.200.BTCUSDT`, `publicTrade.BTCUSDT`), kept subscribed."""

    __slots__ = (
        "alone", "backoff", "channel", "outage", "req_id", "retry_at", "sent_at", "state",
        "symbol", "topic",
    )  # fmt: skip

    def __init__(
        self, channel: str, topic: str, symbol: str, feed_name: str, backoff: Backoff
    ) -> None:
        self.channel = channel  # orderbook, publicTrade
        self.topic = topic
        self.symbol = symbol
        self.state = SubState.IDLE
        self.sent_at = 0.0
        self.req_id = ""  # of the request it was last sent in
        self.retry_at = 0.0
        self.alone = False  # sent in a request of its own (after a failure naming no topic)
        self.backoff = backoff
        self.outage = Outage(f"{feed_name}: subscription of {topic}", log)

    def problem(self) -> str | None:
        if self.outage.active:
            return f"{self.channel} subscribe failing: {self.outage.cause}"
        if self.state is not SubState.CONFIRMED:
            return f"{self.channel} subscription not confirmed yet"
        return None

    def confirmed(self) -> None:
        self.state = SubState.CONFIRMED
        self.alone = False
        self.backoff.reset()
        self.outage.ok()


def max_args(category: str) -> int | None:
    return SPOT_MAX_ARGS if category == "spot" else None


def batches(topics: Sequence[str], most: int | None) -> Iterator[list[str]]:
    """`topics` in requests of at most `most` args whose JSON stays within MAX_ARGS_CHARS."""
    batch: list[str] = []
    chars = 2  # []
    for topic in topics:
        size = len(orjson.dumps(topic)) + (1 if batch else 0)
        if batch and (chars + size > MAX_ARGS_CHARS or (most is not None and len(batch) >= most)):
            yield batch
            batch, chars, size = [], 2, size - 1
        batch.append(topic)
        chars += size
    if batch:
        yield batch


def named_topics(ret_msg: str, topics: Sequence[str]) -> set[str]:
    """The topics of a request that a reply's `ret_msg` names."""
    tokens = set(_TOKENS.findall(ret_msg))
    return {topic for topic in topics if topic in tokens}


def verdicts(
    requested: Sequence[Subscription], success: bool, ret_msg: str
) -> list[tuple[Subscription, Verdict]]:
    """What a reply to a subscribe request says of each of its topics still awaiting one.

    A failure naming topics is about those alone ("already subscribed" confirms them); one
    naming none is about the whole request. Bybit does not say whether the other topics of
    a request with a named failure were subscribed: they are asked again.
    """
    waiting = [sub for sub in requested if sub.state is SubState.SENT]
    if success:
        return [(sub, Verdict.CONFIRMED) for sub in waiting]
    named = named_topics(ret_msg, [sub.topic for sub in waiting])
    failed = Verdict.CONFIRMED if ALREADY_SUBSCRIBED in ret_msg else Verdict.REJECTED
    return [
        (sub, Verdict.ASK_AGAIN if named and sub.topic not in named else failed) for sub in waiting
    ]
