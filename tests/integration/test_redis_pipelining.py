"""RespConnection with several batches in flight at once on its one connection."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from marketdata.redis_batch import RespConnection
from tests.redis_server import RedisServer


async def test_batches_sent_together_each_get_their_own_replies(
    redis_client: aioredis.Redis, redis_server: RedisServer
) -> None:
    connection = RespConnection(redis_server.url)
    sizes = [1, 700, 3, 2000, 5]  # replies of one batch arrive in the same reads as others'
    try:
        batches = [[("ECHO", f"{b}:{i}") for i in range(n)] for b, n in enumerate(sizes)]
        blocked = connection.send([("BLPOP", "nothing", "0.1")])  # holds the line 0.1 s
        replies = await asyncio.gather(blocked, *(connection.send(b) for b in batches))
    finally:
        await connection.close()
    assert replies[0] == [None]
    for b, (n, got) in enumerate(zip(sizes, replies[1:], strict=True)):
        assert got == [f"{b}:{i}".encode() for i in range(n)]


async def test_a_lost_connection_fails_every_batch_in_flight_and_the_next_reconnects(
    redis_client: aioredis.Redis, redis_server: RedisServer
) -> None:
    connection = RespConnection(redis_server.url)
    try:
        await connection.send([("PING",)])
        killed = connection.send([("CLIENT", "KILL", "SKIPME", "no")])  # closes this very line
        behind = connection.send([("ECHO", "behind")])
        outcomes = await asyncio.gather(killed, behind, return_exceptions=True)
        assert isinstance(outcomes[1], RedisError), outcomes  # never another batch's reply
        assert await connection.send([("ECHO", "again")]) == [b"again"]
    finally:
        await connection.close()


@pytest.mark.parametrize("in_flight", [2, 5])
async def test_close_waits_for_the_batches_in_flight(
    redis_client: aioredis.Redis, redis_server: RedisServer, in_flight: int
) -> None:
    connection = RespConnection(redis_server.url)
    await connection.send([("PING",)])
    sends = [
        asyncio.ensure_future(connection.send([("BLPOP", "nothing", "0.05"), ("ECHO", str(i))]))
        for i in range(in_flight)
    ]
    await asyncio.sleep(0)  # all written
    await connection.close()
    assert [s.result() for s in sends] == [[None, str(i).encode()] for i in range(in_flight)]
