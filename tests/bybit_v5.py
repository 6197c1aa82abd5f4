"""The recorded Bybit v5 linear capture: its server frames, and what is in them counted
from the raw JSON (with the standard library, not marketdata's parser)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"
BYBIT_CAPTURE = FIXTURES / "bybit_v5_linear_2026-08-09.jsonl"
DEPTH = 200  # the capture subscribed orderbook.200
SYMBOLS = ("BTCUSDT", "DOGEUSDT", "ETHUSDT", "SOLUSDT")
SERVICE_TOPICS = ("orderbook", "publicTrade")  # what the feed subscribes


@dataclass
class Capture:
    frames: list[bytes] = field(default_factory=list)  # every ws_in frame, in order
    deltas: Counter[str] = field(default_factory=Counter)  # book deltas per symbol
    snapshots: Counter[str] = field(default_factory=Counter)  # book snapshots per symbol
    trade_ids: list[tuple[str, str]] = field(default_factory=list)  # (symbol, i), in order

    def topic_frames(self, *prefixes: str) -> list[bytes]:
        """The frames of topics starting with one of `prefixes` (and every reply)."""
        out = []
        for frame in self.frames:
            topic = json.loads(frame).get("topic")
            if topic is None or topic.split(".")[0] in prefixes:
                out.append(frame)
        return out


def load(path: Path = BYBIT_CAPTURE) -> Capture:
    capture = Capture()
    for line in path.read_text().splitlines():
        row = json.loads(line)
        if row["src"] != "ws_in":
            continue
        capture.frames.append(row["raw"].encode())
        message: dict[str, Any] = json.loads(row["raw"])
        topic = message.get("topic", "")
        if topic.startswith("orderbook."):
            kind = capture.snapshots if message["type"] == "snapshot" else capture.deltas
            kind[message["data"]["s"]] += 1
        elif topic.startswith("publicTrade."):
            capture.trade_ids += [(t["s"], t["i"]) for t in message["data"]]
    return capture


def book_message(symbol: str, kind: str, u: int, bids: list[list[str]],
                 asks: list[list[str]], ts: int = 1) -> bytes:  # fmt: skip
    """A hand-made orderbook.200 frame."""
    data = {"s": symbol, "b": bids, "a": asks, "u": u, "seq": u}
    message = {"topic": f"orderbook.{DEPTH}.{symbol}", "type": kind, "ts": ts, "data": data}
    return json.dumps(message).encode()
