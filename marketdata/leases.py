"""Instances on several hosts share the configured symbols through Redis leases.

Each (venue, symbol) has a lease key in Redis (leases_scripts); the instance whose value
it holds is the only one that publishes the symbol. Every round (TTL/3, or sooner when
another instance's lease is about to expire) an instance:

1. heartbeats (lease_instances, scored by Redis's clock): N = the live instances;
2. renews the leases it holds; one that is not its own any more is *lost*;
3. releases what it holds beyond its fair share, ceil(symbols / N), so that others take
   them: it stops publishing those first, then deletes the leases;
4. under its share, acquires free leases (each with a new fencing token) and starts
   their feeds.

A dead instance's leases expire one TTL after its last renewal at the latest, and the
others wake just after the first of them expires: its symbols are taken over within the
TTL plus the time their books take to resync. Fencing (leases_fence) makes sure a paused
owner that lost a lease publishes nothing more for it. Every change is logged, one line
each, and counted in lease_changes_total{exchange,symbol,change}.

This is mutual exclusion as good as Redis's: one Redis (or one master) decides. Redis's
asynchronous replication can lose a lease in a failover, and then two instances may each
hold "their" lease until the next renewal finds out; the server-side fence then lets only
the value the new master holds publish.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import random
import secrets
import socket
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from marketdata.config import LeasesConfig
from marketdata.leases_fence import Fence, Pair
from marketdata.leases_store import LeaseStore
from marketdata.metrics import Metrics
from marketdata.outage import Outage
from marketdata.redis_cluster_client import REDIS_FAILURES, redis_client

log = logging.getLogger(__name__)

RENEWALS_PER_TTL = 3
MARGIN_FRACTION = 0.1  # of the TTL: the local deadline comes this much before Redis's
WAKE_AFTER_EXPIRY_S = 0.02  # past another's expiring lease, to find it free
SHUTDOWN_TIMEOUT_S = 1.0


class Owner(Protocol):
    """What runs the feeds of the symbols this instance holds."""

    def start(self, pairs: Sequence[Pair]) -> None:
        """Build and start feeds for these newly held symbols."""

    async def stop(self, pairs: Sequence[Pair]) -> None:
        """Stop publishing these symbols at once; close feeds left with none."""


def default_instance_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class Leases:
    def __init__(
        self,
        store: LeaseStore,
        fence: Fence,
        universe: Sequence[Pair],
        ttl_s: float,
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.fence = fence
        self.instance_id = store.instance_id
        self.outage = Outage("leases (Redis)", log)
        self._universe = list(universe)
        self._ttl = ttl_s
        self._interval = ttl_s / RENEWALS_PER_TTL
        self._good_for = ttl_s * (1 - MARGIN_FRACTION)
        self._changes = metrics.lease_changes
        self._owned = metrics.leases_owned
        self._instances = metrics.lease_instances
        self._clock = clock
        self.live = 0  # instances seen by the last heartbeat (0: none yet)
        self.share = 0
        self._holding = False  # shutting down: renew what is held, nothing else

    @classmethod
    def connect(cls, redis_url: str, cluster: bool, config: LeasesConfig,
                universe: Sequence[Pair], metrics: Metrics) -> Leases:  # fmt: skip
        """Nothing is sent until the first round; a URL redis-py refuses raises ValueError."""
        timeout = max(0.2, config.ttl_s / RENEWALS_PER_TTL)
        client = redis_client(
            redis_url, cluster, socket_timeout=timeout, socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 1),  # a stale connection once; never a backoff's wait
        )  # fmt: skip
        store = LeaseStore(
            client, config.instance_id or default_instance_id(), round(config.ttl_s * 1000)
        )
        return cls(store, Fence(universe), universe, config.ttl_s, metrics)

    def problems(self) -> list[str]:
        if self.outage.active:
            return [f"lease renewal failing: {self.outage.cause}"]
        if self.live == 0:
            return ["no lease round completed yet"]
        return []

    def describe(self) -> dict[str, object]:
        """For /ready: this instance, what it holds, and its fair share."""
        return {
            "instance_id": self.instance_id, "owned": len(self.fence.held()),
            "instances": self.live, "fair_share": self.share,
            "symbols_configured": len(self._universe),
        }  # fmt: skip

    async def run(self, owner: Owner) -> None:
        """Rounds until cancelled; a round Redis fails is an outage, retried next round.
        Leases past their local deadline are given up whether or not Redis answers."""
        while True:
            delay = self._interval
            try:  # each Redis call is bounded by the client's socket timeout (TTL/3)
                delay = await self.round(owner)
                self.outage.ok()
            except REDIS_FAILURES as e:
                self.outage.fail(e)
            await self._lose(owner, self.fence.expired(self._clock()), "not renewed in time")
            await asyncio.sleep(delay)

    def hold(self) -> None:
        """From now on rounds only renew (and the fence drops what is lost): shutdown is
        publishing what is pending, under leases that must not lapse meanwhile."""
        self._holding = True

    async def round(self, owner: Owner) -> float:
        """One round; the seconds until the next."""
        sent = self._clock()
        failure: BaseException | None = None  # a part of Redis that did not answer
        try:
            self.live = await self.store.heartbeat()
        except REDIS_FAILURES as e:  # its master may be failing over: renew all the same
            failure = e
        live = self.live
        self._instances.set(live)
        held = self.fence.held()
        if held:
            renewed = await self.store.renew({p: g.value for p, g in held.items()})
            lost = []
            for pair, ok in renewed.items():
                if ok is True:
                    self.fence.extend(pair, sent + self._good_for)
                elif ok is False:
                    lost.append(pair)
                else:  # not known: good until its local deadline, asked again next round
                    failure = failure or ok
            await self._lose(owner, lost, "another instance holds it, or it expired")
        if failure is not None:
            raise failure  # no balancing on a partial view; run() tells the outage
        if self._holding:
            return self._interval
        self.share = share = math.ceil(len(self._universe) / max(1, live))
        held = self.fence.held()
        if len(held) > share:
            await self._release(owner, sorted(held)[share:], f"over the fair share of {share}")
        others = [p for p in self._universe if p not in self.fence.held()]
        remaining = await self.store.pttls(others)
        want = share - len(self.fence.held())
        if want > 0:
            free = [p for p, ms in zip(others, remaining, strict=True) if ms == -2]
            random.shuffle(free)
            await self._acquire(owner, free[:want])
        self._owned.set(len(self.fence.held()))
        expiring = [ms / 1000 for ms in remaining if ms >= 0]
        return min([self._interval] + [s + WAKE_AFTER_EXPIRY_S for s in expiring])

    async def release_all(self, owner: Owner | None = None) -> None:
        """At shutdown, after the last flush: free every lease for the others at once."""
        held = self.fence.held()
        try:
            async with asyncio.timeout(SHUTDOWN_TIMEOUT_S):
                if held:
                    await self._release(owner, sorted(held), "shutting down")
                await self.store.leave()
        except REDIS_FAILURES as e:
            log.warning("leases: could not release %d lease(s) at shutdown (they expire "
                        "within %gs): %s", len(held), self._ttl, e)  # fmt: skip
        self._owned.set(0)

    async def aclose(self) -> None:
        await self.store.aclose()

    async def _acquire(self, owner: Owner, pairs: Sequence[Pair]) -> None:
        if not pairs:
            return
        sent = self._clock()
        tokens = await self.store.acquire(pairs)
        for pair, token in tokens.items():
            value = f"{self.instance_id}:{token}"
            self.fence.grant(pair, value, token, sent + self._good_for)
            self._note(pair, "acquired", token, f"fair share {self.share}, {self.live} "
                       "instance(s)")  # fmt: skip
        if tokens:
            owner.start(list(tokens))

    async def _release(self, owner: Owner | None, pairs: Sequence[Pair], why: str) -> None:
        """Stop publishing, then free the leases."""
        grants = {}
        for pair in pairs:
            grant = self.fence.revoke(pair)
            if grant is not None:
                grants[pair] = grant
        if owner is not None:
            await owner.stop(list(grants))
        released = await self.store.release({p: g.value for p, g in grants.items()})
        for pair, ok in released.items():
            if isinstance(ok, BaseException):
                self._note(pair, "released", grants[pair].token,
                           f"{why}; Redis did not answer ({ok}): it expires by itself")  # fmt: skip
            else:
                change = "released" if ok else "lost"
                self._note(pair, change, grants[pair].token, why if ok else "found expired")

    async def _lose(self, owner: Owner, pairs: Sequence[Pair], why: str) -> None:
        grants = {}
        for pair in pairs:
            grant = self.fence.revoke(pair)
            if grant is not None:
                grants[pair] = grant
        if not grants:
            return
        for pair, grant in grants.items():
            self._note(pair, "lost", grant.token, why)
        if not self._holding:  # else the feeds are closed already
            await owner.stop(list(grants))

    def _note(self, pair: Pair, change: str, token: int, why: str) -> None:
        exchange, symbol = pair
        level = logging.WARNING if change == "lost" else logging.INFO
        log.log(level, "lease %s: %s:%s token %d (%s)", change, exchange, symbol, token, why)
        self._changes.labels(exchange, symbol, change).inc()
