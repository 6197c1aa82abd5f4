"""The boundary every exchange adapter implements."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

from marketdata.continuity import ContinuityRule
from marketdata.events import BookSnapshot, Event, Level


class MalformedMessage(ValueError):
    """A frame the adapter cannot turn into events. `reason` is a short metric label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class ExchangeAdapter(Protocol):
    name: str
    continuity: ContinuityRule
    snapshot_weight: int  # request weight of one snapshot, for the REST gate

    def stream_urls(self, symbol: str) -> list[str]:
        """WebSocket URLs to open for one symbol (each one connection)."""

    def snapshot_url(self, symbol: str) -> str:
        """REST URL of the order-book snapshot for one symbol."""

    def parse(self, frame: bytes | str, recv_ts: float) -> Sequence[Event]:
        """Events in one frame; [] for frames that carry none. Raises MalformedMessage."""

    def parse_snapshot(self, symbol: str, body: bytes, recv_ts: float) -> BookSnapshot:
        """The REST snapshot body. Raises MalformedMessage."""


def parse_levels(raw: Any, where: str) -> list[Level]:
    """[[price, qty], ...] of decimal strings -> validated Levels."""
    if not isinstance(raw, list):
        raise MalformedMessage("bad_field", f"{where} is not a list")
    levels = []
    for entry in raw:
        if not isinstance(entry, list) or len(entry) < 2:
            raise MalformedMessage("bad_level", f"{where} entry {entry!r}")
        price_text, qty_text = entry[0], entry[1]
        price, qty = to_number(price_text, where), to_number(qty_text, where)
        if price <= 0 or qty < 0:
            raise MalformedMessage("bad_level", f"{where} entry {entry!r} out of range")
        levels.append((price, qty, price_text, qty_text))
    return levels


def to_number(text: Any, where: str) -> float:
    """A finite float from the exchange's decimal string (numbers as JSON numbers refused)."""
    if not isinstance(text, str):
        raise MalformedMessage("bad_type", f"{where}: {text!r} is not a decimal string")
    try:
        value = float(text)
    except ValueError:
        raise MalformedMessage("bad_number", f"{where}: {text!r}") from None
    if not math.isfinite(value):
        raise MalformedMessage("bad_number", f"{where}: {text!r} is not finite")
    return value


def to_int(value: Any, where: str) -> int:
    if type(value) is not int:
        raise MalformedMessage("bad_type", f"{where}: {value!r} is not an integer")
    return value
