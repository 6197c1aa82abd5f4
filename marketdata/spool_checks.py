"""At start, with the spool on: is Redis persisting it, and is anyone draining it?

The spool is only as durable as Redis. Without an append-only file a Redis crash or restart
loses every entry not yet drained (RDB snapshots, if any, lose everything since the last
one), so the service says so once at start. Asking needs CONFIG GET, which managed Redis
services often refuse; then INFO persistence answers, and the refusal is logged at INFO.

Nothing drains the spool until `marketdata persist` has created its consumer groups: until
then it only grows, up to `spool.max_entries`, and then refuses entries. Said once at start.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from redis.exceptions import ResponseError

from marketdata.logs import describe
from marketdata.redis_cluster_client import REDIS_FAILURES, AnyRedis, aclose_client, redis_client
from marketdata.spool import PLAIN, SpoolStreams

CHECK_TIMEOUT_S = 3.0


async def check_spool(
    url: str,
    max_entries: int,
    log: logging.Logger,
    cluster: bool = False,
    streams: SpoolStreams = PLAIN,
) -> None:
    """Log a WARNING when Redis at `url` has appendonly off, and one when no consumer group
    reads the spool (its first partition: `streams`) yet; never raises. On a cluster, the
    node that answers CONFIG GET speaks for all (they are usually configured alike)."""
    client = redis_client(url, cluster, socket_timeout=2, socket_connect_timeout=2)
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            appendonly = await _appendonly(client, log)
            drained = await _has_consumer_groups(client, streams.trades)
    except REDIS_FAILURES as e:
        log.info("spool not checked: Redis did not answer (%s)", describe(e))
        return
    finally:
        await aclose_client(client)
    if not drained:
        log.warning(
            "nothing drains %s and %s until `marketdata persist` runs: they grow "
            "to spool.max_entries (%d entries together) and then refuse new ones",
            streams.trades, streams.books, max_entries,
        )  # fmt: skip
    if not appendonly:
        log.warning(
            "the spool is on but Redis has no append-only file (appendonly no): entries "
            "not yet drained by `marketdata persist` are lost if Redis stops or crashes; "
            "run Redis with appendonly yes"
        )


async def _appendonly(client: AnyRedis, log: logging.Logger) -> bool:
    try:
        reply: dict[Any, Any] = await client.config_get("appendonly")
    except ResponseError as e:
        log.info("spool durability: CONFIG GET refused (%s); asking INFO persistence",
                 describe(e))  # fmt: skip
        info = await client.info("persistence")
        return bool(int(info.get("aof_enabled", 0)))
    value = reply.get("appendonly") or reply.get(b"appendonly") or b""
    return (value.decode() if isinstance(value, bytes) else str(value)) == "yes"


async def _has_consumer_groups(client: AnyRedis, stream: str) -> bool:
    try:
        groups = await client.xinfo_groups(stream)
    except ResponseError:  # no such key: nobody has created the stream or a group yet
        return False
    return bool(groups)
