"""The spool's stream replies, in the shapes redis-py hands the persist client."""

from __future__ import annotations

from marketdata.persist.replies import claimed_entries, read_entries

FIELDS = {b"symbol": b"BTCUSDT"}


def test_read_entries_per_stream() -> None:
    reply = [[b"spool:trades", [(b"1-0", FIELDS), (b"2-0", FIELDS)]], [b"spool:books", []]]
    assert read_entries(reply) == reply


def test_read_entries_nothing_came() -> None:
    assert read_entries(None) == []
    assert read_entries([]) == []


def test_claimed_entries_drop_the_deleted() -> None:
    # Redis 6.2 lists an entry deleted since delivery as (None, None); 7.0 reports it apart.
    reply = [b"0-0", [(b"1-0", FIELDS), (None, None), (b"3-0", FIELDS)], [b"2-0"]]
    assert claimed_entries(reply) == (b"0-0", [(b"1-0", FIELDS), (b"3-0", FIELDS)])


def test_claimed_entries_cursor_goes_on() -> None:
    assert claimed_entries([b"5-0", [], []]) == (b"5-0", [])
