"""The boundary every exchange adapter implements."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

from marketdata.continuity import ContinuityRule
from marketdata.events import BookSnapshot, Event, Level

_INF = math.inf

# Update ids (U, u, pu, lastUpdateId) are per-symbol counters: about 6 * 10^11 in the 2021
# capture, growing by far less than 10^12 a year. 2^53 leaves centuries of room and is the
# largest integer any JSON peer (a JavaScript double) holds exactly, so an id at or past it
# can only be corruption. It must be refused, not applied: one diff with a far-future id,
# chained on a valid `pu`, would make every later real diff look old.
MAX_UPDATE_ID = 2**53


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
    """[[price, qty], ...] of decimal strings -> validated Levels.

    This runs for every level of every diff, so the checks are inline rather than calls to
    to_number (the calls were a tenth of the parse); the error path sorts out the reason.
    """
    if type(raw) is not list:
        raise MalformedMessage("bad_field", f"{where} is not a list")
    levels = []
    for entry in raw:
        if type(entry) is not list or len(entry) != 2:
            raise MalformedMessage("bad_level", f"{where} entry {entry!r}")
        price_text, qty_text = entry
        if type(price_text) is not str or type(qty_text) is not str:
            raise MalformedMessage("bad_type", f"{where}: {entry!r} is not two decimal strings")
        try:
            price, qty = float(price_text), float(qty_text)
        except ValueError:
            raise MalformedMessage("bad_number", f"{where}: {entry!r}") from None
        if not (0 < price < _INF and 0 <= qty < _INF):
            raise _out_of_range(price, qty, entry, where)
        levels.append((price, qty, price_text, qty_text))
    return levels


def _out_of_range(price: float, qty: float, entry: list[str], where: str) -> MalformedMessage:
    if not (math.isfinite(price) and math.isfinite(qty)):
        return MalformedMessage("bad_number", f"{where}: {entry!r} is not finite")
    return MalformedMessage("bad_level", f"{where} entry {entry!r} out of range")


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


def to_update_id(value: Any, where: str) -> int:
    """A venue update id: an integer in 1 .. MAX_UPDATE_ID - 1."""
    if type(value) is not int:
        raise MalformedMessage("bad_type", f"{where}: {value!r} is not an integer")
    if not 0 < value < MAX_UPDATE_ID:
        raise MalformedMessage("bad_ids", f"{where}: {value} is outside 1..2^53-1")
    return value
