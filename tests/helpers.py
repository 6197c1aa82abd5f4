"""Test helpers: capture paths and an independent reference order book."""

from __future__ import annotations

import socket
from decimal import Decimal
from pathlib import Path

import orjson

FIXTURES = Path(__file__).parent / "fixtures"
FUTURES_CAPTURE = FIXTURES / "binance_futures_2021-07-22.jsonl"
SPOT_CAPTURE = FIXTURES / "binance_spot_2021-08-14.jsonl"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ReferenceBook:
    """A plain-dict book with Decimal keys, written separately from marketdata.book."""

    def __init__(self, bids: list[list[str]], asks: list[list[str]]) -> None:
        self.bids = {Decimal(p): (p, q) for p, q in bids if Decimal(q) != 0}
        self.asks = {Decimal(p): (p, q) for p, q in asks if Decimal(q) != 0}

    def apply(self, bids: list[list[str]], asks: list[list[str]]) -> None:
        for side, levels in ((self.bids, bids), (self.asks, asks)):
            for p, q in levels:
                if Decimal(q) == 0:
                    side.pop(Decimal(p), None)
                else:
                    side[Decimal(p)] = (p, q)

    def top(self, depth: int) -> tuple[list[list[str]], list[list[str]]]:
        bids = [list(self.bids[k]) for k in sorted(self.bids, reverse=True)[:depth]]
        asks = [list(self.asks[k]) for k in sorted(self.asks)[:depth]]
        return bids, asks


def expected_books_from_capture(path: Path, depth: int) -> dict[str, dict]:
    """Each symbol's final top-`depth` book and last update id, by the documented futures
    rule (drop u < L; first applied U <= L <= u; then pu == previous u), computed from the
    raw capture with plain dicts."""
    records = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    snapshots = {}
    for r in records:
        if r["src"] == "rest":
            snap = orjson.loads(r["raw"])
            symbol = r["url"].split("symbol=")[1].split("&")[0]
            snapshots.setdefault(symbol, snap)
    books: dict[str, ReferenceBook] = {}
    last: dict[str, int] = {}
    for r in records:
        if r["src"] != "ws_in" or "@depth" not in r["raw"]:
            continue
        d = orjson.loads(r["raw"])["data"]
        s, snap = d["s"], snapshots[d["s"]]
        if s not in books:
            if d["u"] < snap["lastUpdateId"]:
                continue
            assert d["U"] <= snap["lastUpdateId"] <= d["u"], "capture does not bridge"
            books[s] = ReferenceBook(snap["bids"], snap["asks"])
        else:
            assert d["pu"] == last[s], "capture has a gap"
        books[s].apply(d["b"], d["a"])
        last[s] = d["u"]
    result = {}
    for s, book in books.items():
        bids, asks = book.top(depth)
        result[s] = {"bids": bids, "asks": asks, "last_update_id": last[s]}
    return result


def captured_trades(path: Path) -> dict[str, list[int]]:
    """aggTrade ids per symbol, in capture order."""
    trades: dict[str, list[int]] = {}
    for line in path.read_bytes().splitlines():
        r = orjson.loads(line)
        if r["src"] == "ws_in" and "@aggTrade" in r["raw"]:
            d = orjson.loads(r["raw"])["data"]
            trades.setdefault(d["s"], []).append(d["a"])
    return trades
