"""redis-py clients for a single Redis or a Redis Cluster, from the same redis_url.

The publisher has its own connections (redis_batch, redis_cluster); everything else
(persist, the shared REST budget, the spool checks) uses redis-py, whose RedisCluster
follows MOVED/ASK and failovers itself.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError

AnyRedis: TypeAlias = aioredis.Redis | RedisCluster
RedisFailure: TypeAlias = RedisError | RedisClusterException | OSError
# What a Redis call may raise when Redis (or a cluster) cannot do it: redis-py's
# RedisClusterException ("Redis Cluster cannot be connected", e.g. every node down, or a
# plain Redis named as a cluster) is not a RedisError. TimeoutError is an OSError.
REDIS_FAILURES = (RedisError, RedisClusterException, OSError)


def redis_client(url: str, cluster: bool, **options: Any) -> AnyRedis:
    """A client that connects on first use; `options` as for redis.asyncio.from_url."""
    if cluster:
        return RedisCluster.from_url(url, **options)
    return aioredis.from_url(url, **options)


async def aclose_client(client: AnyRedis) -> None:
    """Close every connection of the client. redis-py's RedisCluster.aclose() closes only
    a client that initialized: one that never reached a cluster (a plain Redis named as
    one, a stop while it was connecting) keeps its startup nodes' connections open. Those
    are closed here too (disconnecting a closed node does nothing)."""
    await client.aclose()
    if isinstance(client, RedisCluster):
        await client.nodes_manager.aclose("startup_nodes")


def hash_tagged(prefix: str, name: str, cluster: bool) -> str:
    """`prefix:name`, or `prefix:{name}` on a cluster: the keys of one name share a slot."""
    return f"{prefix}:{{{name}}}" if cluster else f"{prefix}:{name}"
