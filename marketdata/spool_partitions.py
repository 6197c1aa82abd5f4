"""The publisher's spool appends over the spool's partitions (one on a single Redis; on a
Redis Cluster `spool.partitions` stream pairs, see spool.py): each symbol's entries go to
its partition's queues, and each partition keeps its own capacity from its own XLENs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from marketdata.metrics import Metrics
from marketdata.redis_batch import Command
from marketdata.spool import TRADES_STREAM, SpoolCapacity, SpoolStreams, partition_of
from marketdata.spool_appends import SpoolAppends, SpoolPart, xadd


@dataclass
class SpoolTake:
    """The spool's share of one batch: one part per partition that added commands."""

    parts: list[tuple[SpoolAppends, SpoolPart]] = field(default_factory=list)


class SpoolPartitions:
    def __init__(
        self,
        capacity: SpoolCapacity,
        metrics: Metrics,
        max_pending: int,
        partitions: list[SpoolStreams],
    ) -> None:
        if len(partitions) == 1:
            capacities = [capacity]
        else:
            share = max(1, capacity.max_entries // len(partitions))
            capacities = [SpoolCapacity(share, capacity.books_refuse_fraction) for _ in partitions]
        self.partitions = [
            SpoolAppends(c, metrics, max_pending, streams)
            for c, streams in zip(capacities, partitions, strict=True)
        ]

    def _for(self, entry: dict[str, str] | dict[str, str | bytes]) -> SpoolAppends:
        if len(self.partitions) == 1:
            return self.partitions[0]
        exchange, symbol = _text(entry["exchange"]), _text(entry["symbol"])
        return self.partitions[partition_of(exchange, symbol, len(self.partitions))]

    def add_book(self, entry: dict[str, str | bytes]) -> None:
        self._for(entry).add_book(entry)

    def add_trade(self, entry: dict[str, str]) -> None:
        self._for(entry).add_trade(entry)

    def pending(self) -> list[Command]:
        return [command for p in self.partitions for command in p.pending()]

    def restore(self, entries: list[Command], done: Callable[[], None]) -> None:
        """Spilled entries, each to its partition (an entry spilled under another layout,
        a single Redis's spool:trades say, goes to its symbol's partition here)."""
        routed: dict[int, list[Command]] = {}
        for command in entries:
            k, command = self._route(command)
            routed.setdefault(k, []).append(command)
        if not routed:
            done()
            return
        left = [len(routed)]

        def one_done() -> None:
            left[0] -= 1
            if left[0] == 0:
                done()

        for k, commands in routed.items():
            self.partitions[k].restore(commands, one_done)

    def _route(self, command: Command) -> tuple[int, Command]:
        stream = _text(command[1])
        for k, p in enumerate(self.partitions):
            if stream in p.streams.both:
                return k, command
        fields = {_text(command[i]): _text(command[i + 1]) for i in range(3, len(command) - 1, 2)}
        k = partition_of(fields.get("exchange", ""), fields.get("symbol", ""),
                         len(self.partitions))  # fmt: skip
        streams = self.partitions[k].streams
        target = streams.trades if stream.startswith(TRADES_STREAM) else streams.books
        return k, xadd(target, fields)

    def next_due(self) -> float | None:
        due = [d for p in self.partitions if (d := p.next_due()) is not None]
        return min(due) if due else None

    def take(self, commands: list[Command], now: float, everything: bool) -> SpoolTake | None:
        taken = SpoolTake()
        for p in self.partitions:
            part = p.take(commands, now, everything)
            if part is not None:
                taken.parts.append((p, part))
        return taken if taken.parts else None

    def give_back(self, taken: SpoolTake) -> None:
        for p, part in taken.parts:
            p.give_back(part)

    def settle(
        self, taken: SpoolTake, replies: list[Any], refused: frozenset[int] | set[int], now: float
    ) -> None:
        for p, part in taken.parts:
            p.settle(part, replies, refused, now)


def _text(value: str | bytes | int) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
