"""Kraken book checksum (WebSocket v2 guide "book checksum v2"; v1 is the same string).

CRC32 (zlib, unsigned) of the top 10 asks (low to high) then the top 10 bids (high to
low), each level's price then quantity rendered at the pair's precision, with the `.`
removed and leading zeros stripped. v2 sends prices and quantities as JSON numbers, which
may drop trailing zeros (`0.566` for `0.56600000`) or, in principle, use an exponent;
rendering from the number's own text at a fixed precision gives the exchange's digits
whatever the spelling. A float never takes part.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from zlib import crc32

from marketdata.book import PriceLevel

CHECKSUM_LEVELS = 10


class RenderError(ValueError):
    """A price or quantity text that cannot be written at the pair's precision."""


def render(text: str, precision: int) -> str:
    """`text` at `precision` decimals, without the `.` and without leading zeros.

    "0.001" at 8 -> "100000"; "45285.2" at 1 -> "452852"; "45285" at 1 -> "452850".
    """
    if "e" in text or "E" in text:
        text = _plain(text)
    dot = text.find(".")
    if dot < 0:
        digits = text + "0" * precision
    else:
        decimals = len(text) - dot - 1
        if decimals <= precision:
            digits = text[:dot] + text[dot + 1 :] + "0" * (precision - decimals)
        else:  # more decimals than the pair has: only zeros may be dropped
            if text[dot + 1 + precision :].strip("0"):
                raise RenderError(f"{text} has more than {precision} decimals")
            digits = text[:dot] + text[dot + 1 : dot + 1 + precision]
    return digits.lstrip("0")


def _plain(text: str) -> str:
    """An exponent form as plain decimal digits ("1E-8" -> "0.00000001")."""
    try:
        return format(Decimal(text), "f")
    except InvalidOperation:
        raise RenderError(f"{text!r} is not a decimal number") from None


def book_checksum(
    asks: Iterable[PriceLevel],
    bids: Iterable[PriceLevel],
    price_precision: int,
    qty_precision: int,
) -> int:
    """CRC32 of the levels given (the caller passes the top 10 of each side, best first)."""
    parts = []
    for side in (asks, bids):
        for price, qty in side:
            parts.append(render(price, price_precision))
            parts.append(render(qty, qty_precision))
    return crc32("".join(parts).encode())
