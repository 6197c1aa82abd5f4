"""Kraken checksum rendering: the pair's precision, never a float, never an exponent."""

from __future__ import annotations

from zlib import crc32

import pytest

from marketdata.venues.kraken.checksum import RenderError, book_checksum, render


@pytest.mark.parametrize(
    ("text", "precision", "expected"),
    [
        ("45285.2", 1, "452852"),  # the guide's price
        ("0.00100000", 8, "100000"),  # the guide's quantity, as sent in full
        ("0.001", 8, "100000"),  # the same quantity with its trailing zeros dropped
        ("45285", 1, "452850"),  # an integral JSON number
        ("0.05000", 5, "5000"),  # the v1 guide's price
        ("0.00000304", 8, "304"),  # ... and volume
        ("1e-05", 8, "1000"),  # an exponent: Python's own spelling of 0.00001
        ("1E-8", 8, "1"),
        ("2.5E+3", 1, "25000"),
        ("1.230", 2, "123"),  # one decimal too many, but only a zero
        ("7", 0, "7"),
    ],
)
def test_render_writes_the_number_at_the_pairs_precision(
    text: str, precision: int, expected: str
) -> None:
    assert render(text, precision) == expected


def test_render_refuses_digits_the_pair_cannot_have() -> None:
    with pytest.raises(RenderError, match="more than 2 decimals"):
        render("1.235", 2)
    with pytest.raises(RenderError, match="not a decimal number"):
        render("1e-5x", 8)


def test_checksum_is_asks_then_bids_price_then_qty() -> None:
    asks = [("0.05005", "0.00000500"), ("0.05010", "0.00000500")]
    bids = [("0.05000", "0.00000304"), ("0.04990", "1.5")]
    expected = crc32(b"5005500" + b"5010500" + b"5000304" + b"4990150000000")
    assert book_checksum(asks, bids, 5, 8) == expected
    assert book_checksum(bids, asks, 5, 8) != expected  # the order is part of it


def test_checksum_is_unsigned() -> None:
    # A level whose CRC32 has the top bit set: zlib gives it unsigned, as Kraken sends.
    value = book_checksum([("1.0", "3.0")], [], 1, 1)
    assert value == crc32(b"1030")
    assert value >= 1 << 31
