"""The recorded Kraken v1 book capture, rewritten as Kraken WebSocket v2 frames.

The only real Kraken book data we have is v1 (fixed-precision strings in arrays); v2 sends
the same values as JSON numbers in objects. Each v1 value becomes a JSON number with the
exact digits of its string, or (`trim=True`) with trailing zeros dropped the way v2
writes them (`5.00000000` -> `5`, `0.000022900` -> `0.0000229`). The checksums are the
capture's own `c` values; v2 snapshots carry one too, computed here by the v1 rule on the
v1 strings (not by marketdata code). Each pair's precision is read from its strings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zlib import crc32

from marketdata.venues.kraken.wire import Precision

FIXTURES = Path(__file__).parent / "fixtures"
KRAKEN_V1_CAPTURE = FIXTURES / "kraken_v1_book_2021-04-17.jsonl"
DEPTH = 1000  # the capture subscribed book-1000
Levels = list[list[str]]  # v1: [price, volume, timestamp(, "r")]


@dataclass
class V2Capture:
    frames: list[bytes] = field(default_factory=list)  # every v2 frame, in capture order
    book_frames: list[bytes] = field(default_factory=list)  # only the book ones
    v1_frames: list[str] = field(default_factory=list)  # the v1 ws_in frames, as received
    precisions: dict[str, Precision] = field(default_factory=dict)
    updates: dict[str, int] = field(default_factory=dict)  # book updates per pair


def v1_messages(path: Path = KRAKEN_V1_CAPTURE) -> list[str]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r["raw"] for r in rows if r["src"] == "ws_in"]


def convert(path: Path = KRAKEN_V1_CAPTURE, trim: bool = False) -> V2Capture:
    capture = V2Capture(v1_frames=v1_messages(path))
    messages = [json.loads(raw) for raw in capture.v1_frames]
    capture.precisions = _precisions(messages)
    for message in messages:
        frame = _frame(message, trim, capture)
        capture.frames.append(frame)
        if frame.startswith(b'{"channel":"book"'):
            capture.book_frames.append(frame)
    return capture


def _frame(message: Any, trim: bool, capture: V2Capture) -> bytes:
    if isinstance(message, dict):
        return _control(message)
    pair = message[-1]
    objects = message[1:-2]
    if "as" in objects[0] or "bs" in objects[0]:
        book = objects[0]
        bids, asks = book.get("bs", []), book.get("as", [])
        checksum = reference_checksum(bids, asks)
        return _book(pair, "snapshot", bids, asks, checksum, trim)
    bids = [level for o in objects for level in o.get("b", [])]
    asks = [level for o in objects for level in o.get("a", [])]
    checksum = int(objects[-1]["c"])
    capture.updates[pair] = capture.updates.get(pair, 0) + 1
    return _book(pair, "update", bids, asks, checksum, trim)


def _control(message: dict[str, Any]) -> bytes:
    event = message["event"]
    if event == "heartbeat":
        return b'{"channel":"heartbeat"}'
    if event == "systemStatus":
        data = {"api_version": "v2", "connection_id": message["connectionID"],
                "system": message["status"], "version": "2.0.0"}  # fmt: skip
        return json.dumps({"channel": "status", "type": "update", "data": [data]}).encode()
    if event == "subscriptionStatus":
        result = {"channel": "book", "depth": DEPTH, "snapshot": True, "symbol": message["pair"]}
        reply = {"method": "subscribe", "result": result, "success": True, "req_id": 1}
        return json.dumps(reply).encode()
    raise ValueError(f"unexpected v1 event {event!r}")


def _book(pair: str, kind: str, bids: Levels, asks: Levels, checksum: int, trim: bool) -> bytes:
    stamps = [float(level[2]) for level in bids + asks]
    ts = datetime.fromtimestamp(max(stamps), UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return (
        f'{{"channel":"book","type":"{kind}","data":[{{"symbol":"{pair}",'
        f'"bids":[{_levels(bids, trim)}],"asks":[{_levels(asks, trim)}],'
        f'"checksum":{checksum},"timestamp":"{ts}"}}]}}'
    ).encode()


def _levels(levels: Levels, trim: bool) -> str:
    return ",".join(
        f'{{"price":{_number(level[0], trim)},"qty":{_number(level[1], trim)}}}' for level in levels
    )


def _number(text: str, trim: bool) -> str:
    if trim and "." in text:
        text = text.rstrip("0").rstrip(".") or "0"
    return text


def _precisions(messages: list[Any]) -> dict[str, Precision]:
    seen: dict[str, tuple[set[int], set[int]]] = {}
    for message in messages:
        if isinstance(message, dict):
            continue
        prices, qtys = seen.setdefault(message[-1], (set(), set()))
        for o in message[1:-2]:
            for key in ("as", "bs", "a", "b"):
                for level in o.get(key, []):
                    prices.add(len(level[0].split(".")[1]))
                    qtys.add(len(level[1].split(".")[1]))
    out = {}
    for pair, (prices, qtys) in seen.items():
        if len(prices) != 1 or len(qtys) != 1:
            raise ValueError(f"{pair}: mixed precision {prices} {qtys}")
        out[pair] = Precision(prices.pop(), qtys.pop())
    return out


def reference_checksum(bids: Levels, asks: Levels) -> int:
    """The v1 rule on v1 strings: top 10 asks low->high, top 10 bids high->low."""
    top_asks = sorted(asks, key=lambda level: Decimal(level[0]))[:10]
    top_bids = sorted(bids, key=lambda level: Decimal(level[0]), reverse=True)[:10]
    text = "".join(
        level[0].replace(".", "").lstrip("0") + level[1].replace(".", "").lstrip("0")
        for level in top_asks + top_bids
    )
    return crc32(text.encode())
