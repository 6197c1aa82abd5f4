"""Spool housekeeping: per-group pending/lag figures, and trimming what every group has
acknowledged.

Trimming uses XTRIM MINID, never MAXLEN: on Redis 7.0 a MAXLEN trim deletes entries still
pending in a group. The threshold is, over every group of the stream, the oldest entry it
has not acknowledged (its oldest pending entry, or else the next one it has not read).
"""

from __future__ import annotations

import logging
import time

import redis.asyncio as aioredis

from marketdata.spool import STREAMS

log = logging.getLogger(__name__)


def entry_ms(entry_id: bytes | str) -> int:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.split("-", 1)[0])


async def oldest_unacked(redis: aioredis.Redis, stream: str, group: dict) -> bytes | str | None:
    """The oldest entry `group` has not acknowledged, or None if it has them all."""
    if group["pending"]:
        summary = await redis.xpending(stream, group["name"])
        return summary["min"]
    undelivered = await redis.xrange(stream, min=f"({_text(group['last-delivered-id'])}", count=1)
    return undelivered[0][0] if undelivered else None


async def group_lags(redis: aioredis.Redis, stream: str) -> dict[str, tuple[int, float]]:
    """group -> (pending entries, seconds since its oldest unacknowledged entry)."""
    now_ms = time.time() * 1000
    lags = {}
    for group in await redis.xinfo_groups(stream):
        oldest = await oldest_unacked(redis, stream, group)
        lag_s = 0.0 if oldest is None else max(0.0, (now_ms - entry_ms(oldest)) / 1000)
        lags[_text(group["name"])] = (int(group["pending"]), lag_s)
    return lags


async def trim(redis: aioredis.Redis, stream: str) -> int:
    """Drop the entries every group has acknowledged; returns how many went."""
    groups = await redis.xinfo_groups(stream)
    if not groups:
        return 0  # nobody has read anything yet: keep it all
    thresholds = []
    for group in groups:
        oldest = await oldest_unacked(redis, stream, group)
        if oldest is None:  # everything acknowledged: keep from just after the last read
            thresholds.append(_after(_text(group["last-delivered-id"])))
        else:
            thresholds.append(_text(oldest))
    threshold = min(thresholds, key=_id_key)
    return int(await redis.xtrim(stream, minid=threshold, approximate=False))


async def trim_all(redis: aioredis.Redis) -> int:
    return sum([await trim(redis, stream) for stream in STREAMS])


def _after(entry_id: str) -> str:
    ms, seq = _id_key(entry_id)
    return f"{ms}-{seq + 1}"


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
