"""Spool entries decoded into rows: trade ids as the venue's text, books without an id."""

from __future__ import annotations

import pytest

from marketdata.persist.rows import MAX_TRADE_ID_CHARS, BadEntry, book_row, trade_row

TRADE = {
    b"exchange": b"okx", b"symbol": b"BTC-USDT", b"trade_id": b"8270341", b"price": b"100.5",
    b"qty": b"0.25", b"side": b"buy", b"exchange_ts": b"1700000000000",
    b"recv_ts": b"1700000000001.5",
}  # fmt: skip
BOOK = {
    b"exchange": b"kraken", b"symbol": b"XBT/USD", b"last_update_id": b"42",
    b"time": b"1700000000000", b"exchange_ts": b"1700000000000", b"recv_ts": b"1700000000001.5",
    b"bids": b'[["100.5","1"]]', b"asks": b'[["101","2"]]',
}  # fmt: skip


def trade(**fields: bytes) -> tuple[bytes, dict[bytes, bytes]]:
    return b"7-1", {**TRADE, **{k.encode(): v for k, v in fields.items()}}


@pytest.mark.parametrize(
    "raw", [b"8270341", b"9223372036854775808", b"abc-1", b"01J9ZQ4XK3", "é-1".encode()]
)
def test_trade_id_is_the_entrys_text(raw: bytes) -> None:
    assert trade_row(trade(trade_id=raw)).trade_id == raw.decode()


def test_trade_id_of_the_longest_length_is_kept() -> None:
    raw = b"x" * MAX_TRADE_ID_CHARS
    assert trade_row(trade(trade_id=raw)).trade_id == raw.decode()


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"", "is empty"),
        (b"x" * (MAX_TRADE_ID_CHARS + 1), "is 129 characters, over 128"),
        (b"12\x003", "holds the control character '\\x00'"),
        (b"12\n", "holds the control character '\\n'"),
        (b"12\x7f", "holds the control character '\\x7f'"),
        ("12\x85".encode(), "holds the control character '\\x85'"),
        (b"\xff12", "is not UTF-8"),
    ],
)
def test_unstorable_trade_id_is_refused_naming_entry_and_field(raw: bytes, why: str) -> None:
    with pytest.raises(BadEntry) as refused:
        trade_row(trade(trade_id=raw))
    message = str(refused.value)
    assert message.startswith("trade entry b'7-1': trade_id ")
    assert why in message


def test_missing_trade_id_is_refused() -> None:
    fields = {k: v for k, v in TRADE.items() if k != b"trade_id"}
    with pytest.raises(BadEntry, match=r"trade entry b'7-1': KeyError\(b'trade_id'\)"):
        trade_row((b"7-1", fields))


def test_book_without_an_update_id_has_none() -> None:
    assert book_row((b"8-0", {**BOOK, b"last_update_id": b""})).last_update_id is None
    assert book_row((b"8-0", BOOK)).last_update_id == 42


def test_book_with_a_bad_update_id_is_refused() -> None:
    with pytest.raises(BadEntry, match="book entry b'8-0'"):
        book_row((b"8-0", {**BOOK, b"last_update_id": b"x"}))
