"""The OKX v5 recording (tests/fixtures/okx_v5_2022-05-13.jsonl), as the frames it holds."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

FIXTURE = Path(__file__).parent / "fixtures" / "okx_v5_2022-05-13.jsonl"
INSTRUMENTS = ("BTC-USD-220527", "BTC-USDT", "UNI-USD-SWAP")


@dataclass
class OkxCapture:
    frames: list[bytes] = field(default_factory=list)  # every server frame, in order
    sent: list[str] = field(default_factory=list)  # the client's frames
    book_frames: list[bytes] = field(default_factory=list)
    updates: dict[str, int] = field(default_factory=dict)  # book updates per instrument


def load() -> OkxCapture:
    capture = OkxCapture()
    for line in FIXTURE.read_text().splitlines():
        row = json.loads(line)
        if row["src"] == "ws_out":
            capture.sent.append(row["raw"])
        if row["src"] != "ws_in":
            continue
        raw = row["raw"].encode()
        capture.frames.append(raw)
        message = json.loads(raw)
        if message.get("arg", {}).get("channel") == "books" and "data" in message:
            capture.book_frames.append(raw)
            if message["action"] == "update":
                inst = message["arg"]["instId"]
                capture.updates[inst] = capture.updates.get(inst, 0) + 1
    return capture
