"""Fencing: a symbol's PUBLISH and SET reach Redis only while this instance holds its lease
(spool appends are history and always go: see Fence.pair_of).

Two checks, because either alone has a hole:

- Local deadline (Fence). A lease is good until the monotonic time its last acquisition
  or renewal was *sent*, plus the TTL, minus a margin: Redis started the TTL later than
  that, so the lease cannot have expired in Redis before the local deadline passes.
  CLOCK_MONOTONIC keeps counting while a process is stopped (SIGSTOP, a VM pause), so an
  owner that wakes after its lease expired sees it at once, before its next command
  leaves, whether or not its lease loop has run yet.
- Server-side token (FencedSender, on a single Redis). Each command of a leased symbol
  goes as EVALSHA of FENCE: Redis runs it only while the lease key still holds this
  instance's value (instance id and fencing token). A batch checked locally just before
  a pause and written just after it is refused there, and counted.

With a Redis Cluster URL the command and its lease key are in different slots, which a
script may not span: there only the local deadline is checked (`server_side=False`), so a
write delayed between the check and Redis running it is not covered (a pause before the
socket write; ClusterSender resending through MOVED or a failover, up to 1 s, against a
margin of a tenth of the TTL).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter

from marketdata.channels import channels_for
from marketdata.leases_scripts import FENCE, FENCED, lease_key
from marketdata.redis_batch import Command, CommandSender, ReplyError

Pair = tuple[str, str]  # (exchange, symbol)


@dataclass
class Grant:
    """A lease this instance holds."""

    value: str  # the lease key's value: "<instance_id>:<token>"
    token: int
    deadline: float  # monotonic; past it the lease may already be another's


class Fence:
    """Which of the configured (exchange, symbol) pairs this instance may publish now."""

    def __init__(self, universe: Iterable[Pair], clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._grants: dict[Pair, Grant] = {}
        self._channels: dict[str, Pair] = {}
        for exchange, symbol in universe:
            pair = (exchange, symbol)
            channels = channels_for(exchange, symbol)
            for name in (channels.orderbook, channels.trades, channels.market_data):
                self._channels[name] = pair

    def grant(self, pair: Pair, value: str, token: int, deadline: float) -> None:
        self._grants[pair] = Grant(value, token, deadline)

    def extend(self, pair: Pair, deadline: float) -> None:
        grant = self._grants.get(pair)
        if grant is not None:
            grant.deadline = max(grant.deadline, deadline)

    def revoke(self, pair: Pair) -> Grant | None:
        """No more commands for this pair, from now on."""
        return self._grants.pop(pair, None)

    def valid(self, pair: Pair, now: float) -> Grant | None:
        grant = self._grants.get(pair)
        return grant if grant is not None and now < grant.deadline else None

    def held(self) -> dict[Pair, Grant]:
        return dict(self._grants)

    def expired(self, now: float) -> list[Pair]:
        return [pair for pair, grant in self._grants.items() if now >= grant.deadline]

    def pair_of(self, command: Command) -> Pair | None:
        """The leased symbol a command publishes for: (S)PUBLISH/SET by channel or key name;
        None for anything else. Spool XADDs are not fenced: the spool is history, which
        persist stores once whoever appended it, and an entry fenced away would be a trade
        lost (e.g. every trade queued through a Redis outage longer than the lease)."""
        name = command[0]
        if name == "PUBLISH" or name == "SET" or name == "SPUBLISH":
            return self._channels.get(str(command[1]))
        return None


class FencedSender:
    """A CommandSender that sends each leased symbol's commands only under its lease.

    A command whose lease is not held (or past its local deadline) is not sent; one whose
    lease Redis finds another's is not run. Either way its reply is FENCED, which the
    publisher takes as done: the symbol is another instance's now, nothing is retried.
    Both are counted in lease_fenced_commands_total{where="local"|"redis"}.
    """

    def __init__(
        self, inner: CommandSender, fence: Fence, counter: Counter, *, server_side: bool = True
    ) -> None:
        self._inner = inner
        self._fence = fence
        self._counter = counter  # labels: exchange, symbol, where
        self._server_side = server_side
        self._sha = hashlib.sha1(FENCE.encode()).hexdigest()
        self._keys: dict[Pair, str] = {}
        self._loaded = False  # FENCE is known to be in the server's script cache

    async def send(self, commands: Sequence[Command]) -> list[Any]:
        fence = self._fence
        now = fence.clock()
        out: list[Command] = []
        where: list[int] = []  # index in `commands` of each command sent
        replies: list[Any] = [FENCED] * len(commands)
        pairs: dict[int, Pair] = {}
        dropped: dict[Pair, int] = {}
        for i, command in enumerate(commands):
            pair = fence.pair_of(command)
            if pair is None:
                out.append(command)
                where.append(i)
                continue
            grant = fence.valid(pair, now)
            if grant is None:
                dropped[pair] = dropped.get(pair, 0) + 1
                continue
            pairs[i] = pair
            out.append(self._fenced(pair, grant, command) if self._server_side else command)
            where.append(i)
        self._count(dropped, "local")
        if not out:  # nothing left to send: still ask Redis, so readiness stays true
            await self._inner.send([("PING",)])
            return replies
        sent = await self._send(out, fenced=bool(pairs))
        refused: dict[Pair, int] = {}
        for i, reply in zip(where, sent, strict=True):
            replies[i] = reply
            if reply == FENCED and i in pairs:
                refused[pairs[i]] = refused.get(pairs[i], 0) + 1
        self._count(refused, "redis")
        return replies

    async def close(self) -> None:
        await self._inner.close()

    def _fenced(self, pair: Pair, grant: Grant, command: Command) -> Command:
        key = self._keys.get(pair)
        if key is None:
            key = self._keys[pair] = lease_key(*pair)
        return ("EVALSHA", self._sha, 1, key, grant.value, *command)

    async def _send(self, commands: list[Command], fenced: bool) -> list[Any]:
        """Send, the script loaded first when it may not be. Commands refused NOSCRIPT
        (Redis restarted or flushed its scripts meanwhile) go again as EVAL, in their
        order (every EVALSHA of the batch was refused), after the batch's XLENs."""
        if self._loaded or not self._server_side or not fenced:
            replies = await self._inner.send(commands)
        else:
            replies = (await self._inner.send([("SCRIPT", "LOAD", FENCE), *commands]))[1:]
            self._loaded = True
        again = [i for i, r in enumerate(replies) if _noscript(r)]
        if again:
            self._loaded = False
            retry = [("EVAL", FENCE, *commands[i][2:]) for i in again]
            for i, reply in zip(again, await self._inner.send(retry), strict=True):
                replies[i] = reply
        return replies

    def _count(self, counts: dict[Pair, int], where: str) -> None:
        for (exchange, symbol), n in counts.items():
            self._counter.labels(exchange, symbol, where).inc(n)


def _noscript(reply: Any) -> bool:
    return type(reply) is ReplyError and str(reply).startswith("NOSCRIPT")
