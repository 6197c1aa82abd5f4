"""RespConnection against a real redis-server: replies, errors, reconnects, databases."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from marketdata.redis_batch import ReplyError, RespConnection, pack
from tests.redis_server import RedisServer


def test_pack_is_resp_bulk_strings() -> None:
    assert pack([("SET", "k", b"a\r\nb", "EX", 5)]) == (
        b"*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\na\r\nb\r\n$2\r\nEX\r\n$1\r\n5\r\n"
    )


async def test_replies_come_back_in_order_and_values_arrive_intact(
    redis_client: aioredis.Redis, redis_server: RedisServer
) -> None:
    connection = RespConnection(redis_server.url)
    value = bytes(range(256)) * 40  # binary, with CR LF inside, over 10 KB
    try:
        replies = await connection.send([
            ("SET", "k", value, "EX", 60), ("PUBLISH", "nobody", "x"), ("XADD", "s", "*", "a", 1),
            ("XLEN", "s"), ("GET", "k"),
        ])  # fmt: skip
    finally:
        await connection.close()
    assert replies[0] == b"OK"
    assert replies[1] == 0
    assert replies[3] == 1
    assert replies[4] == value
    assert await redis_client.get("k") == value
    assert 0 < await redis_client.ttl("k") <= 60


async def test_an_error_reply_is_that_command_s_reply_and_the_connection_stays_usable(
    redis_client: aioredis.Redis, redis_server: RedisServer
) -> None:
    await redis_client.set("text", "x")
    connection = RespConnection(redis_server.url)
    try:
        replies = await connection.send(
            [("SET", "before", 1), ("XADD", "text", "*", "a", 1), ("SET", "after", 2)]
        )
        assert replies[0] == b"OK"
        assert isinstance(replies[1], ReplyError)
        assert str(replies[1]).startswith("WRONGTYPE")
        assert replies[2] == b"OK"
        assert await connection.send([("GET", "before"), ("GET", "after")]) == [b"1", b"2"]
    finally:
        await connection.close()


async def test_reconnects_after_redis_restarts(redis_server: RedisServer) -> None:
    connection = RespConnection(redis_server.url, timeout_s=2)
    try:
        assert await connection.send([("PING",)]) == [b"PONG"]
        redis_server.stop()
        with pytest.raises((RedisError, OSError)):
            await connection.send([("PING",)])
        redis_server.start()
        assert await connection.send([("PING",)]) == [b"PONG"]
    finally:
        await connection.close()


async def test_selects_the_database_in_the_url(
    redis_client: aioredis.Redis, redis_server: RedisServer
) -> None:
    connection = RespConnection(redis_server.url.rsplit("/", 1)[0] + "/3")
    try:
        await connection.send([("SET", "in3", "yes")])
    finally:
        await connection.close()
    assert await redis_client.get("in3") is None  # the fixture's client is on db 0
    other = aioredis.Redis.from_url(redis_server.url.rsplit("/", 1)[0] + "/3")
    assert await other.get("in3") == b"yes"
    await other.aclose()


async def test_a_refused_auth_is_an_error_every_time(redis_server: RedisServer) -> None:
    url = redis_server.url.replace("redis://", "redis://nobody:wrong@")
    connection = RespConnection(url)
    try:
        for _ in range(2):  # the second try must not reuse an unauthenticated connection
            with pytest.raises(RedisError):
                await connection.send([("PING",)])
    finally:
        await connection.close()
