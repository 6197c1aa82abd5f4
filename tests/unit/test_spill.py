"""The spill file: entries round-trip exactly; a damaged file is one line naming where."""

from __future__ import annotations

import pytest

from marketdata import spill


def test_entries_round_trip_and_a_missing_file_holds_none(tmp_path):
    path = tmp_path / "deep" / "spool.jsonl"
    assert spill.read(path) == []
    entries = [
        ("XADD", "spool:trades", "*", "symbol", "BTCUSDT", "trade_id", "7"),
        ("XADD", "spool:books", "*", "bids", b'[["1.5","2"]]'),
    ]
    spill.write(path, entries)
    assert spill.read(path) == [
        ("XADD", "spool:trades", "*", "symbol", "BTCUSDT", "trade_id", "7"),
        ("XADD", "spool:books", "*", "bids", '[["1.5","2"]]'),
    ]
    assert not path.with_name("spool.jsonl.tmp").exists()


@pytest.mark.parametrize("line", [b"not json", b'["spool:trades", "symbol"]', b'{"a": 1}'])
def test_a_damaged_line_is_named(tmp_path, line):
    path = tmp_path / "spool.jsonl"
    path.write_bytes(b'["spool:trades", "symbol", "X"]\n' + line + b"\n")
    with pytest.raises(spill.SpillError, match=r"spool\.jsonl:2: "):
        spill.read(path)
