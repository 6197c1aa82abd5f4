"""The boundary every persistence sink implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from marketdata.persist.rows import BookRow, TradeRow


class SinkError(Exception):
    pass


class RetryableSinkError(SinkError):
    """The sink is unreachable or busy: the same batch may succeed later."""


class FatalSinkError(SinkError):
    """Retrying cannot help (bad credentials, schema conflict): stop loudly."""


@dataclass
class WriteResult:
    written: dict[str, int] = field(default_factory=dict)  # table -> rows newly stored
    rejected: list[tuple[bytes, str]] = field(default_factory=list)  # (entry id, why)


class Sink(Protocol):
    name: str

    async def start(self) -> None:
        """Connect and create the schema. Raises RetryableSinkError or FatalSinkError."""

    async def write(self, trades: list[TradeRow], books: list[BookRow]) -> WriteResult:
        """Store both lists atomically enough that a retry of the same rows is harmless
        (idempotent on the natural keys). Rows the store refuses are reported, not raised."""

    async def close(self) -> None: ...
