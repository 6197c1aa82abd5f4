"""The lease scripts, called for many symbols at once (one pipeline per kind of call).

On a single Redis a call fails or succeeds as a whole. On a Redis Cluster each lease is on
its own master and one master can fail alone (a failover): a call's reply for a lease
whose master did not answer is that exception, so the others' replies still count; when
none answered, the call raises."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript

from marketdata.leases_fence import Pair
from marketdata.leases_scripts import (
    ACQUIRE,
    HEARTBEAT,
    INSTANCES_KEY,
    RELEASE,
    RENEW,
    lease_key,
    token_key,
)
from marketdata.redis_cluster_client import AnyRedis, aclose_client


class LeaseStore:
    """One instance's view of the leases in Redis; every call may raise RedisError."""

    def __init__(self, client: AnyRedis, instance_id: str, ttl_ms: int) -> None:
        self.instance_id = instance_id
        self.ttl_ms = ttl_ms
        self._client = client
        self._acquire = client.register_script(ACQUIRE)
        self._renew = client.register_script(RENEW)
        self._release = client.register_script(RELEASE)
        self._heartbeat = client.register_script(HEARTBEAT)

    async def heartbeat(self) -> int:
        """Say this instance is alive for one TTL; the number of live instances."""
        return int(await self._heartbeat([INSTANCES_KEY], [self.instance_id, self.ttl_ms]))

    async def leave(self) -> None:
        await self._client.zrem(INSTANCES_KEY, self.instance_id)

    async def pttls(self, pairs: Sequence[Pair]) -> list[int]:
        """Each lease's remaining ms; -2 when nobody holds it, -1 when not known (its master
        did not answer: not to be taken)."""
        if not pairs:
            return []
        client = self._client
        if isinstance(client, RedisCluster):
            calls = [client.pttl(lease_key(*pair)) for pair in pairs]
            replies = _answered(await asyncio.gather(*calls, return_exceptions=True))
            return [-1 if isinstance(r, BaseException) else int(r) for r in replies]
        pipe = client.pipeline(transaction=False)
        for pair in pairs:
            pipe.pttl(lease_key(*pair))
        return [int(t) for t in await pipe.execute()]

    async def acquire(self, pairs: Sequence[Pair]) -> dict[Pair, int]:
        """Try each free lease: pair -> its new fencing token, for those taken."""
        replies = await self._each(
            self._acquire, pairs, lambda p: [lease_key(*p), token_key(*p)],
            lambda p: [self.instance_id, self.ttl_ms],
        )  # fmt: skip
        return {
            pair: int(r)
            for pair, r in zip(pairs, replies, strict=True)
            if not isinstance(r, BaseException) and int(r) > 0
        }

    async def renew(self, held: dict[Pair, str]) -> dict[Pair, bool | BaseException]:
        """pair -> whether its lease was still ours (and now lasts one TTL more), or why
        that is not known."""
        pairs = list(held)
        replies = await self._each(
            self._renew, pairs, lambda p: [lease_key(*p)], lambda p: [held[p], self.ttl_ms]
        )
        return {pair: _flag(r) for pair, r in zip(pairs, replies, strict=True)}

    async def release(self, held: dict[Pair, str]) -> dict[Pair, bool | BaseException]:
        """pair -> whether the lease was ours until now (and is free now), or why that is
        not known (then it expires by itself)."""
        pairs = list(held)
        replies = await self._each(
            self._release, pairs, lambda p: [lease_key(*p)], lambda p: [held[p]]
        )
        return {pair: _flag(r) for pair, r in zip(pairs, replies, strict=True)}

    async def _each(
        self,
        script: AsyncScript,
        pairs: Sequence[Pair],
        keys: Callable[[Pair], list[str]],
        args: Callable[[Pair], list[str | int]],
    ) -> list[Any]:
        if not pairs:
            return []
        client = self._client
        if isinstance(client, RedisCluster):
            # A cluster pipeline does not load scripts on the node that lacks one: each call
            # goes by itself to its lease's node (redis-py's Script loads it there), together.
            calls = [script(keys(pair), args(pair)) for pair in pairs]
            return _answered(await asyncio.gather(*calls, return_exceptions=True))
        pipe = client.pipeline(transaction=False)
        for pair in pairs:
            await script(keys(pair), args(pair), client=pipe)
        return list(await pipe.execute())

    async def aclose(self) -> None:
        await aclose_client(self._client)


def _answered(replies: list[Any]) -> list[Any]:
    """The replies, exceptions in place of those not given; raises when none was given."""
    failed = [r for r in replies if isinstance(r, BaseException)]
    if failed and len(failed) == len(replies):
        raise failed[0]
    return replies


def _flag(reply: Any) -> bool | BaseException:
    return reply if isinstance(reply, BaseException) else int(reply) == 1
