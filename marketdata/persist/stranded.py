"""At persist's start on a Redis Cluster: say which spool streams hold entries that no
partition of this configuration reads, so they are not left behind unseen.

They come from a run with more `spool.partitions` than now (spool:trades:{p6} after 8
became 6), or from the service on one Redis before `redis_cluster` was turned on
(spool:trades). Nothing is moved: a persist run with the configuration that wrote them
drains them. Checked once; a Redis that does not answer is not a reason to wait.
"""

from __future__ import annotations

import asyncio
import logging

from marketdata.config import MAX_SPOOL_PARTITIONS
from marketdata.redis_cluster_client import REDIS_FAILURES, AnyRedis
from marketdata.spool import PLAIN, spool_partitions

CHECK_TIMEOUT_S = 5.0


def stray_streams(partitions: int) -> list[str]:
    """Every spool stream name a cluster's spool may have used but `partitions` does not."""
    every = spool_partitions(True, MAX_SPOOL_PARTITIONS)[partitions:]
    return [*PLAIN.both, *(stream for pair in every for stream in pair.both)]


async def warn_stranded(client: AnyRedis, partitions: int, log: logging.Logger) -> list[str]:
    """Log a WARNING per stream holding entries that no partition reads; those streams."""
    names = stray_streams(partitions)
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            pipe = client.pipeline()
            for name in names:
                pipe.xlen(name)
            lengths = await pipe.execute()
    except REDIS_FAILURES as e:  # TimeoutError is an OSError
        log.info("spool partitions not checked for strays: %s", e)
        return []
    stranded = [(n, int(k)) for n, k in zip(names, lengths, strict=True) if int(k)]
    for name, entries in stranded:
        log.warning(
            "%s holds %d entries that no partition of spool.partitions %d reads: run "
            "marketdata persist with the configuration that wrote them to drain them",
            name, entries, partitions,
        )  # fmt: skip
    return [name for name, _ in stranded]
