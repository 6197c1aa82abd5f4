"""OKX v5 public frames, as the exchange writes them. Pure.

    {"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"asks":
     [["60000.1","0.0152","0","3"]],"bids":[],"ts":"1763791620440","checksum":-914047754,
     "prevSeqId":1000123,"seqId":1000127}]}

Prices and sizes are texts without trailing zeros; times are Unix ms as text. Replies are
`{"event":"subscribe"|"unsubscribe","arg":{...},"connId":"..."}` and
`{"event":"error","code":"60018","msg":"...","connId":"..."}`; the keepalive reply is the
bare text `pong`.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from marketdata.sim.kraken_book import plain

PONG = b"pong"
UPGRADE = "64008"
UPGRADE_MSG = "The connection will soon be closed for a service upgrade. Please reconnect."
Level = tuple[str, str]  # (px, sz) texts


def now_ms() -> str:
    return str(time.time_ns() // 1_000_000)


def reply(event: str, arg: dict[str, str], conn_id: str) -> bytes:
    return orjson.dumps({"event": event, "arg": arg, "connId": conn_id})


def error(code: str, msg: str, conn_id: str) -> bytes:
    return orjson.dumps({"event": "error", "code": code, "msg": msg, "connId": conn_id})


def notice(conn_id: str) -> bytes:
    return orjson.dumps({"event": "notice", "code": UPGRADE, "msg": UPGRADE_MSG,
                         "connId": conn_id})  # fmt: skip


def levels(texts: list[Level]) -> list[list[str]]:
    """[[px, sz, "0", numOrders], ...]; a deleted level ("0" size) has no orders."""
    return [[px, sz, "0", "0" if sz == "0" else str(1 + len(sz) % 4)] for px, sz in texts]


def book(
    action: str,
    inst_id: str,
    bids: list[Level],
    asks: list[Level],
    checksum: int,
    prev_seq_id: int,
    seq_id: int,
) -> bytes:
    entry = {
        "asks": levels(asks), "bids": levels(bids), "ts": now_ms(), "checksum": checksum,
        "prevSeqId": prev_seq_id, "seqId": seq_id,
    }  # fmt: skip
    return orjson.dumps(
        {"arg": {"channel": "books", "instId": inst_id}, "action": action, "data": [entry]}
    )


def trades(inst_id: str, entries: list[dict[str, Any]]) -> bytes:
    """`entries`: the generated market's trades (sim/market.py), the taker's side from "m"."""
    data = [
        {
            "instId": inst_id, "tradeId": str(t["a"]), "px": plain(t["p"]), "sz": plain(t["q"]),
            "side": "sell" if t["m"] else "buy", "ts": str(t["T"]), "count": "1",
        }
        for t in entries
    ]  # fmt: skip
    return orjson.dumps({"arg": {"channel": "trades", "instId": inst_id}, "data": data})


def bbo(inst_id: str, bid: Level, ask: Level, seq_id: int) -> bytes:
    entry = {"asks": levels([ask]), "bids": levels([bid]), "ts": now_ms(), "seqId": seq_id}
    return orjson.dumps({"arg": {"channel": "bbo-tbt", "instId": inst_id}, "data": [entry]})


def rest_book(bids: list[Level], asks: list[Level], seq_id: int) -> bytes:
    """The body of `GET /api/v5/market/books` (with `source=0`: its seqId)."""
    entry = {"asks": levels(asks), "bids": levels(bids), "ts": now_ms(), "seqId": seq_id}
    return orjson.dumps({"code": "0", "msg": "", "data": [entry]})


def rest_error(code: str, msg: str) -> bytes:
    return orjson.dumps({"code": code, "msg": msg, "data": []})
