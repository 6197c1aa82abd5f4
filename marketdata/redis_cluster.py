"""The publisher's batches to a Redis Cluster: split by key slot, one connection per master.

ClusterSender keeps the slot map (CLUSTER SLOTS) and one RespConnection per master. A
batch is split by the node owning each command's key slot (a command without a key, PING,
goes to every master: the publisher's idle PING then vouches for all of them); the parts
go out concurrently and the replies are put back in the batch's order. Commands of one
slot stay in one part, in the batch's order.

Topology changes are followed without a restart, each batch trying for RETRY_WITHIN_S:
- MOVED: the slot map is read again and the commands go to the node named;
- ASK (a slot being migrated): ASKING then the command, on the node named, this once;
- TRYAGAIN, CLUSTERDOWN, or a node that cannot be reached (a master killed, before its
  replica is promoted): the map is read again from any node that answers (known nodes
  first, then the URL's), and the commands still without a reply are sent again after a
  short pause.
What still has no reply then fails the batch as a whole (the publisher
then treats it as a Redis outage and sends all of it again), so a command another node had
accepted may be sent twice: a PUBLISH delivered twice, a spool entry appended twice (the
persist sinks store a trade once whatever the number of its entries).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from redis.crc import key_slot
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from marketdata.redis_batch import Command, ReplyError, RespConnection

log = logging.getLogger(__name__)

__all__ = ["Address", "ClusterError", "ClusterSender", "command_key", "command_slot"]

Address = tuple[str, int]
SLOTS = 16384
RETRY_PAUSES_S = (0.05, 0.1, 0.2, 0.3)  # then the last one, until RETRY_WITHIN_S
# How long a batch keeps trying after a node was lost or the cluster said "not now": MOVED
# and ASK settle well within it; a master's failover (cluster-node-timeout plus the
# election, 2 s and more) does not, and shows as a Redis outage while it lasts.
RETRY_WITHIN_S = 1.0
# Replies that say "not now" rather than "refused": sent again after a pause.
TRANSIENT = ("TRYAGAIN", "CLUSTERDOWN")
NOT_CLUSTER = "cluster support disabled"


class ClusterError(RedisError):
    """The cluster's topology could not be learnt, or a batch found no node to take it."""


class NotACluster(ClusterError):
    """redis_url names a Redis without cluster support."""


def command_key(command: Command) -> bytes | None:
    """The key (or shard channel) that decides where a command goes; None: any node."""
    name = command[0]
    name = (name.decode() if isinstance(name, bytes) else str(name)).upper()
    if name in ("EVAL", "EVALSHA", "FCALL"):
        keys = int(command[2])
        return _bytes(command[3]) if keys else None
    if name in ("PING", "ASKING", "CLUSTER", "INFO", "SCRIPT") or len(command) < 2:
        return None
    return _bytes(command[1])


def command_slot(command: Command) -> int | None:
    if command[0] in FIRST_KEY:  # the publisher's commands: no parsing
        return _slot(command[1])
    key = command_key(command)
    return None if key is None else _slot(key)


# Commands whose first argument is their key (or shard channel), as the publisher sends them.
FIRST_KEY = frozenset({"PUBLISH", "SPUBLISH", "SET", "XADD", "XLEN", "GET"})


@functools.lru_cache(maxsize=1 << 16)  # a flush's channels and keys recur every flush
def _slot(key: str | bytes | int) -> int:
    return key_slot(_bytes(key))


def _bytes(arg: str | bytes | int) -> bytes:
    return arg if isinstance(arg, bytes) else str(arg).encode()


@dataclass
class Round:
    """The commands of a batch still without a reply, and how to send them again."""

    todo: list[int]
    asking: dict[int, Address] = field(default_factory=dict)  # command -> ASK's node
    pause: bool = False  # wait and read the slot map first (False: ASK only)
    cause: str = "no reply"

    def failed(self, part: list[int], cause: str) -> None:
        self.todo += part
        self.pause = True
        self.cause = cause


class ClusterSender:
    """A CommandSender for a Redis Cluster named by any of its nodes' URL."""

    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        self._url = urlsplit(url)
        self._connections: dict[Address, RespConnection] = {}
        seed = RespConnection(url, timeout_s)  # ValueError for a URL redis-py would refuse
        self._seed: Address = (self._url.hostname or "localhost", self._url.port or 6379)
        self._connections[self._seed] = seed
        self._timeout = timeout_s
        self._slots: list[Address] = []  # slot -> its master; empty until the first refresh
        self._masters: list[Address] = []
        self._replicas: list[Address] = []
        # Masters whose last part failed: every batch waits for them (fails, after
        # RETRY_WITHIN_S) until they answer or a failover replaces them in the map, so that
        # no batch reports success while some symbols cannot be published.
        self._down: dict[Address, str] = {}
        self._refreshing: asyncio.Lock = asyncio.Lock()
        self._map_version = 0

    @property
    def masters(self) -> list[Address]:
        return list(self._masters)

    def node_for(self, command: Command) -> Address | None:
        slot = command_slot(command)
        return None if slot is None or not self._slots else self._slots[slot]

    async def send(self, commands: Sequence[Command]) -> list[Any]:
        started = time.monotonic()
        deadline = started + self._timeout  # every round trip of this batch within it
        give_up = started + min(self._timeout, RETRY_WITHIN_S)
        replies: list[Any] = [None] * len(commands)
        again = Round(list(range(len(commands))))
        slots = [command_slot(command) for command in commands]  # None: every master
        pauses = iter(RETRY_PAUSES_S)
        while True:
            if not self._slots:
                await self._refresh(deadline)
            version = self._map_version
            parts = self._split(slots, again.todo, again.asking)
            for node in self._down:  # a master lost: this batch waits for it too
                parts.setdefault(node, [])  # (an empty part is a PING)
            results = await asyncio.gather(
                *(self._send_part(node, commands, part, again.asking, deadline)
                  for node, part in parts.items()),
                return_exceptions=True,
            )  # fmt: skip
            again = self._collect(slots, parts, results, replies)
            if not again.todo and not self._down:
                return replies
            if again.pause:  # a node lost, or the cluster in the middle of a change
                pause = next(pauses, RETRY_PAUSES_S[-1])
                if time.monotonic() + pause >= give_up:
                    raise ClusterError(f"Redis Cluster: {again.cause}")
                await asyncio.sleep(pause)
                try:
                    await self._refresh(deadline, version)
                except ClusterError as e:  # no node answers yet: try again until give_up
                    again.cause = str(e)
            elif time.monotonic() >= give_up:
                raise ClusterError(f"Redis Cluster: {again.cause}")

    def _collect(
        self,
        slots: list[int | None],
        parts: dict[Address, list[int]],
        results: list[list[Any] | BaseException],
        replies: list[Any],
    ) -> Round:
        """Keep the replies that are Redis's answer; what goes again in the next round."""
        again = Round([])
        keyless: dict[int, list[Any]] = {}  # a PING's replies, one per master
        for (node, part), result in zip(parts.items(), results, strict=True):
            if isinstance(result, BaseException):
                again.failed(part, self._node_failed(node, result))
                continue
            if self._down.pop(node, None) is not None:
                log.info("redis cluster master %s:%d answers again", *node)
            for i, reply in zip(part, result, strict=True):
                pause = self._redirected(i, reply, again.asking)
                if pause is not None:
                    again.todo.append(i)
                    again.pause = again.pause or pause
                    again.cause = str(reply)
                elif slots[i] is None:
                    keyless.setdefault(i, []).append(reply)
                else:
                    replies[i] = reply
        again.todo = sorted(set(again.todo))
        for i, answers in keyless.items():
            if i not in again.todo:  # every master answered: the first refusal, if any
                refused = [r for r in answers if type(r) is ReplyError]
                replies[i] = refused[0] if refused else answers[0]
        return again

    def _node_failed(self, node: Address, error: BaseException) -> str:
        if not isinstance(error, RedisError | OSError):
            raise error
        cause = f"{node[0]}:{node[1]}: {error or type(error).__name__}"
        if node not in self._down:
            log.warning("redis cluster master unreachable: %s", cause)
        self._down[node] = cause
        return cause

    def _redirected(self, i: int, reply: Any, asking: dict[int, Address]) -> bool | None:
        """None: a reply to keep. Otherwise the command goes again: True after a pause and
        a fresh map (MOVED, TRYAGAIN, CLUSTERDOWN), False at once (ASK)."""
        if type(reply) is not ReplyError:
            return None
        text = str(reply)
        if text.startswith("ASK "):
            asking[i] = _address(text.split()[2])
            return False
        if text.startswith("MOVED "):
            _, slot, where = text.split()
            if self._slots:
                self._slots[int(slot)] = _address(where)  # until the refresh
            return True
        if text.startswith(TRANSIENT):
            return True
        return None

    def _split(
        self, slots: list[int | None], todo: list[int], asking: dict[int, Address]
    ) -> dict[Address, list[int]]:
        parts: dict[Address, list[int]] = {}
        for i in todo:
            node = asking.get(i)
            if node is None:
                slot = slots[i]
                if slot is None:  # every master: a PING vouches for each
                    for master in self._masters:
                        parts.setdefault(master, []).append(i)
                    continue
                node = self._slots[slot]
            parts.setdefault(node, []).append(i)
        return parts

    async def _send_part(
        self,
        node: Address,
        commands: Sequence[Command],
        part: list[int],
        asking: dict[int, Address],
        deadline: float,
    ) -> list[Any]:
        batch: list[Command] = [] if part else [("PING",)]
        for i in part:
            if i in asking:
                batch.append(("ASKING",))
            batch.append(commands[i])
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RedisTimeoutError(f"no reply from Redis within {self._timeout:g}s")
        async with asyncio.timeout(remaining):
            try:
                replies = await self._connection(node).send(batch)
            except TimeoutError:
                raise RedisTimeoutError(f"no reply within {self._timeout:g}s") from None
        if len(batch) == len(part) or not part:
            return replies if part else []
        out, k = [], 0
        for i in part:
            if i in asking:
                k += 1  # ASKING's own +OK
            out.append(replies[k])
            k += 1
        return out

    def _connection(self, node: Address) -> RespConnection:
        connection = self._connections.get(node)
        if connection is None:
            connection = self._connections[node] = RespConnection(self._node_url(node),
                                                                  self._timeout)  # fmt: skip
        return connection

    def _node_url(self, node: Address) -> str:
        url = self._url
        user = url.netloc.rpartition("@")[0]
        netloc = f"{user}@{node[0]}:{node[1]}" if user else f"{node[0]}:{node[1]}"
        return url._replace(netloc=netloc).geturl()

    async def _refresh(self, deadline: float, seen: int | None = None) -> None:
        """Read the slot map from the first node that answers: known masters, then the
        other nodes known, then the URL's. `seen`: skip it if another call has refreshed the
        map since that version."""
        async with self._refreshing:
            if seen is not None and self._map_version != seen:
                return
            candidates = [*self._masters, *self._connections, *self._replicas, self._seed]
            tried: set[Address] = set()
            errors: list[str] = []
            for node in candidates:
                if node in tried:
                    continue
                tried.add(node)
                try:
                    reply = await self._slots_from(node, deadline)
                except NotACluster:
                    raise
                except (RedisError, OSError) as e:
                    errors.append(f"{node[0]}:{node[1]}: {e or type(e).__name__}")
                    continue
                self._install(reply, node)
                return
            raise ClusterError("Redis Cluster: no node gave its slot map (" +
                               "; ".join(errors) + ")")  # fmt: skip

    async def _slots_from(self, node: Address, deadline: float) -> list[Any]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RedisTimeoutError("no time left to read the slot map")
        async with asyncio.timeout(remaining):
            try:
                [reply] = await self._connection(node).send([("CLUSTER", "SLOTS")])
            except TimeoutError:
                raise RedisTimeoutError("no reply to CLUSTER SLOTS") from None
        if type(reply) is ReplyError:
            if NOT_CLUSTER in str(reply):
                raise NotACluster(
                    "redis_url does not name a Redis Cluster (CLUSTER SLOTS: "
                    f"{reply}): set redis_cluster: false"
                )
            raise ClusterError(f"CLUSTER SLOTS: {reply}")
        if not isinstance(reply, list) or not reply:
            raise ClusterError("CLUSTER SLOTS: no slot is served")
        return reply

    def _install(self, reply: list[Any], asked: Address) -> None:
        slots: list[Address | None] = [None] * SLOTS
        masters: dict[Address, None] = {}
        replicas: dict[Address, None] = {}
        for start, end, master, *others in reply:
            node = _node(master, asked)
            masters[node] = None
            replicas.update((_node(replica, asked), None) for replica in others)
            for slot in range(int(start), int(end) + 1):
                slots[slot] = node
        missing = slots.count(None)
        if missing:
            raise ClusterError(f"CLUSTER SLOTS: {missing} slots have no master")
        previous = set(self._masters)
        self._slots = [s for s in slots if s is not None]
        self._masters = list(masters)
        self._replicas = list(replicas)  # where to ask for the map when no master answers
        self._map_version += 1
        for node in [n for n in self._down if n not in masters]:
            del self._down[node]
            log.info("redis cluster master %s:%d replaced in the slot map", *node)
        if previous and previous != set(masters):
            log.info("redis cluster masters now %s",
                     ", ".join(f"{h}:{p}" for h, p in self._masters))  # fmt: skip
        for node in [n for n in self._connections if n not in masters and n != self._seed]:
            self._drop_later(node)

    def _drop_later(self, node: Address) -> None:
        connection = self._connections.pop(node)
        task = asyncio.get_running_loop().create_task(_close_quietly(connection))
        _closing.add(task)
        task.add_done_callback(_closing.discard)

    async def close(self) -> None:
        connections, self._connections = list(self._connections.values()), {}
        for connection in connections:
            await _close_quietly(connection)
        while _closing:
            await asyncio.gather(*_closing, return_exceptions=True)


_closing: set[asyncio.Task[None]] = set()


async def _close_quietly(connection: RespConnection) -> None:
    with contextlib.suppress(RedisError, OSError):
        await connection.close()


def _node(entry: list[Any], asked: Address) -> Address:
    """A node of a CLUSTER SLOTS reply: [host, port, id, ...]; an empty host is the node
    asked."""
    return _text(entry[0]) or asked[0], int(entry[1])


def _address(text: str) -> Address:
    host, _, port = text.rpartition(":")
    return host, int(port)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
