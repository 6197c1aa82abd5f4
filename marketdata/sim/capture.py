"""Recorded exchange captures: one JSON object per line, `t`, `src`, `url`, `raw`.

`src` is `rest` (an HTTP response body), `ws_open`, `ws_out` or `ws_in` (a server frame).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import orjson


@dataclass(frozen=True, slots=True)
class CapturedFrame:
    t: float
    stream: str  # e.g. "sushiusdt@depth@100ms"
    raw: str


@dataclass(frozen=True, slots=True)
class CapturedRest:
    t: float
    symbol: str
    raw: str


@dataclass(frozen=True, slots=True)
class Capture:
    frames: list[CapturedFrame]
    snapshots: dict[str, CapturedRest]  # symbol -> first depth snapshot recorded
    records: list[CapturedFrame | CapturedRest]  # both, in receive order


class CaptureError(ValueError):
    pass


def load_capture(path: str | Path) -> Capture:
    frames: list[CapturedFrame] = []
    snapshots: dict[str, CapturedRest] = {}
    records: list[CapturedFrame | CapturedRest] = []
    with open(path, "rb") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = orjson.loads(line)
                src, raw, t = record["src"], record["raw"], float(record["t"])
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                raise CaptureError(f"{path}:{line_no}: not a capture record ({e})") from None
            if src == "ws_in":
                stream = _stream_of(raw)
                if stream is not None:
                    frame = CapturedFrame(t, stream, raw)
                    frames.append(frame)
                    records.append(frame)
            elif src == "rest":
                symbol = _symbol_of(record.get("url", ""))
                if symbol:
                    rest = CapturedRest(t, symbol, raw)
                    snapshots.setdefault(symbol, rest)
                    records.append(rest)
    return Capture(frames, snapshots, records)


def _stream_of(raw: str) -> str | None:
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    stream = message.get("stream") if isinstance(message, dict) else None
    return stream if isinstance(stream, str) else None


def _symbol_of(url: str) -> str | None:
    values = parse_qs(urlsplit(url).query).get("symbol")
    return values[0].upper() if values else None
