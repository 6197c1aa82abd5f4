"""The recorded Coinbase Advanced Trade capture: one connection's frames, as received."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
COINBASE_CAPTURE = FIXTURES / "coinbase_advanced_2026-08-09.jsonl"
PRODUCTS = ("BTC-USD", "ETH-USD")


@dataclass
class Capture:
    frames: list[bytes] = field(default_factory=list)  # every ws_in frame, in order
    sent: list[dict[str, object]] = field(default_factory=list)  # the client's ws_out frames


def load(path: Path = COINBASE_CAPTURE) -> Capture:
    capture = Capture()
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        if row["src"] == "ws_in":
            capture.frames.append(row["raw"].encode())
        elif row["src"] == "ws_out":
            capture.sent.append(json.loads(row["raw"]))
    return capture
