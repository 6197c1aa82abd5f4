"""Spool housekeeping: per-group pending/lag figures, and trimming what every group has
acknowledged.

Trimming uses XTRIM MINID, never MAXLEN: on Redis 7.0 a MAXLEN trim deletes entries still
pending in a group. The threshold is, over every group of the stream, the oldest entry it
has not acknowledged (its oldest pending entry, or else the next one it has not read).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from redis.exceptions import ResponseError

from marketdata.redis_cluster_client import AnyRedis
from marketdata.spool import STREAMS


@dataclass(frozen=True, slots=True)
class GroupPosition:
    """Where one consumer group stands on one stream."""

    name: str
    pending: int
    last_delivered: str
    oldest_unacked: str | None  # None: it has acknowledged every entry


async def group_positions(redis: AnyRedis, stream: str) -> list[GroupPosition]:
    """Every group's position; none while the stream does not exist (FLUSHALL: the workers
    re-create it with their groups)."""
    try:
        groups = await redis.xinfo_groups(stream)
    except ResponseError as e:
        if "no such key" in str(e):
            return []
        raise
    positions = []
    for group in groups:
        name, last = _text(group["name"]), _text(group["last-delivered-id"])
        if group["pending"]:
            oldest: str | None = _text((await redis.xpending(stream, name))["min"])
        else:
            undelivered = await redis.xrange(stream, min=f"({last}", count=1)
            entry_id = undelivered[0][0] if undelivered else None
            oldest = _text(entry_id) if entry_id is not None else None
        positions.append(GroupPosition(name, int(group["pending"]), last, oldest))
    return positions


def lag_s(position: GroupPosition, now_ms: float) -> float:
    """Seconds since the oldest entry the group has not acknowledged (0: none)."""
    if position.oldest_unacked is None:
        return 0.0
    return max(0.0, (now_ms - entry_ms(position.oldest_unacked)) / 1000)


async def trim(redis: AnyRedis, stream: str, positions: list[GroupPosition]) -> int:
    """Drop the entries every group had acknowledged when `positions` were read (a later
    acknowledgement only leaves a little more behind); returns how many went."""
    if not positions:
        return 0  # nobody has read anything yet: keep it all
    thresholds = [
        p.oldest_unacked if p.oldest_unacked is not None else _after(p.last_delivered)
        for p in positions
    ]
    threshold = min(thresholds, key=_id_key)
    return int(await redis.xtrim(stream, minid=threshold, approximate=False))


async def trim_all(redis: AnyRedis, streams: Sequence[str] = STREAMS) -> int:
    return sum([await trim(redis, s, await group_positions(redis, s)) for s in streams])


def entry_ms(entry_id: bytes | str) -> int:
    return int(_text(entry_id).split("-", 1)[0])


def _after(entry_id: str) -> str:
    ms, seq = _id_key(entry_id)
    return f"{ms}-{seq + 1}"


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
