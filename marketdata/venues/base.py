"""The boundary every exchange adapter implements."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from marketdata.continuity import ContinuityRule
from marketdata.events import BookSnapshot, Event, Level, Trade

_INF = math.inf

# Every venue id (update ids U, u, pu, lastUpdateId; trade ids) must be below MAX_ID.
# Update ids are per-symbol counters: about 6 * 10^11 in the 2021 capture, growing by far
# less than 10^12 a year; trade ids count a symbol's trades from 0, the busiest in the
# billions after years (at a million trades a second 2^53 is 285 years away). 2^53 is the
# first integer a JSON peer (a JavaScript double) cannot hold exactly, so an id at or past
# it can only be corruption. It must be refused, not applied: one diff with a far-future id,
# chained on a valid `pu`, would make every later real diff look old, and one such trade id
# would become the sequence's high-water mark.
MAX_ID = 2**53


class MalformedMessage(ValueError):
    """A frame the adapter cannot turn into events. `reason` is a short metric label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class ExchangeAdapter(Protocol):
    name: str
    snapshot_weight: int  # request weight of one snapshot, for the REST gate
    agg_trades_weight: int  # request weight of one page of past trades
    agg_trades_limit: int  # most trades one page may hold
    weight_limit_per_min: int  # the venue's REST request weight per minute, per IP

    @property
    def continuity(self) -> ContinuityRule:
        """The venue's rule for chaining diffs onto a snapshot (any ContinuityRule class)."""

    def stream_urls(self, symbol: str) -> list[str]:
        """WebSocket URLs to open for one symbol (each one connection)."""

    def snapshot_url(self, symbol: str) -> str:
        """REST URL of the order-book snapshot for one symbol."""

    def instruments_url(self) -> str:
        """REST URL of the venue's instrument list."""

    def parse_instruments(self, body: bytes) -> dict[str, str]:
        """Symbol -> status ("TRADING" when it trades) from the instrument list.
        Raises MalformedMessage."""

    def parse(self, frame: bytes | str, recv_ts: float) -> Sequence[Event]:
        """Events in one frame; [] for frames that carry none. Raises MalformedMessage."""

    def parse_snapshot(self, symbol: str, body: bytes, recv_ts: float) -> BookSnapshot:
        """The REST snapshot body. Raises MalformedMessage."""

    def agg_trades_url(self, symbol: str, from_id: int, limit: int) -> str:
        """REST URL of up to `limit` past trades of one symbol, from id `from_id` on."""

    def parse_agg_trades(self, symbol: str, body: bytes, recv_ts: float) -> list[Trade]:
        """That page's trades, oldest first, marked backfilled. Raises MalformedMessage."""


# An adapter from its venue's (ws_url, rest_url, snapshot_limit): the adapter class itself.
AdapterFactory = Callable[[str, str, int], ExchangeAdapter]


# Decimal strings already found canonical, with their values. A book's prices recur all the
# time (they move within a narrow band), and one dict lookup costs less than float() alone,
# so the strict check is paid once per distinct string. Emptied when full.
KNOWN_DECIMALS: dict[str, float] = {}
MAX_KNOWN_DECIMALS = 1 << 15  # about 3 MB at most


def parse_levels(raw: Any, where: str) -> list[Level]:
    """[[price, qty], ...] of canonical decimal strings -> validated Levels.

    This runs for every level of every diff, so the checks are inline rather than calls to
    decimal_value: a string seen before costs one dict lookup, and a whole-number quantity
    not seen before (the usual kind on many symbols, and too varied to remember) two
    string-method calls and float(). Every other string goes through _new_decimal.
    """
    if type(raw) is not list:
        raise MalformedMessage("bad_field", f"{where} is not a list")
    known = KNOWN_DECIMALS
    levels = []
    for entry in raw:
        if type(entry) is not list or len(entry) != 2:
            raise MalformedMessage("bad_level", f"{where} entry {entry!r}")
        price_text, qty_text = entry
        try:
            price, qty = known.get(price_text), known.get(qty_text)
        except TypeError:  # unhashable: a list or an object where a string should be
            raise MalformedMessage(
                "bad_type", f"{where}: {entry!r} is not two decimal strings"
            ) from None
        if price is None:
            price = _new_decimal(price_text, where)
        if qty is None:
            if type(qty_text) is str and qty_text.isdigit() and qty_text.isascii():
                qty = float(qty_text)  # isdigit() alone is also true of other scripts' digits
            else:
                qty = _new_decimal(qty_text, where)
        if not price or qty == _INF:  # canonical decimals are never negative
            raise _out_of_range(entry, where)
        levels.append((price, qty, price_text, qty_text))
    return levels


def _out_of_range(entry: list[str], where: str) -> MalformedMessage:
    if float(entry[1]) == _INF:  # 309 digits or more
        return MalformedMessage("bad_number", f"{where}: {entry[1][:40]!r}... is not finite")
    return MalformedMessage("bad_level", f"{where} entry {entry!r}: price 0")


def decimal_value(text: Any, where: str) -> float:
    """The value of a decimal string in the venue's canonical form, `[0-9]+(\\.[0-9]+)?`:
    ASCII digits, at most one '.', with digits on both sides. float() alone also takes other
    scripts' digits, '_', spaces, a sign, exponents, inf and nan; each of those, and a JSON
    number where a string belongs, is refused (bad_number, bad_type)."""
    try:
        value = KNOWN_DECIMALS.get(text)
    except TypeError:
        value = None  # unhashable: _new_decimal names the type
    return _new_decimal(text, where) if value is None else value


def _new_decimal(text: Any, where: str) -> float:
    if type(text) is not str:
        raise MalformedMessage("bad_type", f"{where}: {text!r} is not a decimal string")
    # isdigit() is also true of other scripts' digits: hence isascii() first.
    if (
        not (text.isascii() and text.replace(".", "", 1).isdigit())
        or text[0] == "."
        or (text[-1] == ".")
    ):
        raise MalformedMessage("bad_number", f"{where}: {text!r} is not a plain decimal")
    value = float(text)
    if value == _INF:
        raise MalformedMessage("bad_number", f"{where}: {text[:40]!r}... is not finite")
    if len(KNOWN_DECIMALS) >= MAX_KNOWN_DECIMALS:
        KNOWN_DECIMALS.clear()
    KNOWN_DECIMALS[text] = value
    return value


def to_int(value: Any, where: str) -> int:
    if type(value) is not int:
        raise MalformedMessage("bad_type", f"{where}: {value!r} is not an integer")
    return value


def to_update_id(value: Any, where: str) -> int:
    """A venue update id: an integer in 1 .. MAX_ID - 1."""
    if type(value) is not int:
        raise MalformedMessage("bad_type", f"{where}: {value!r} is not an integer")
    if not 0 < value < MAX_ID:
        raise MalformedMessage("bad_ids", f"{where}: {value} is outside 1..2^53-1")
    return value


def to_trade_id(value: Any, where: str) -> int:
    """A venue trade id: an integer in 0 .. MAX_ID - 1 (trade ids count from 0)."""
    if type(value) is not int:
        raise MalformedMessage("bad_type", f"{where}: {value!r} is not an integer")
    if not 0 <= value < MAX_ID:
        raise MalformedMessage("bad_ids", f"{where}: {value} is outside 0..2^53-1")
    return value
