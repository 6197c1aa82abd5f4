"""OKX's legacy book checksum (void in production since 2026-06-23: `checksum` is 0 there).

CRC32 of the top 25 levels of each side, interleaved `bidPx:bidSz:askPx:askSz:...` (when
one side has fewer levels, the rest of the longer side follows), over the exchange's own
strings, read as a signed 32-bit integer. Holds on all 290 book messages of the 2022
recording.
"""

from __future__ import annotations

from zlib import crc32

from marketdata.events import Level

CHECKSUM_LEVELS = 25


def book_checksum(bids: list[Level], asks: list[Level]) -> int:
    """The checksum of the given levels (the caller passes the top 25, best first)."""
    parts: list[str] = []
    for i in range(max(len(bids), len(asks))):
        if i < len(bids):
            parts += (bids[i][2], bids[i][3])
        if i < len(asks):
            parts += (asks[i][2], asks[i][3])
    value = crc32(":".join(parts).encode())
    return value - (1 << 32) if value >= 1 << 31 else value
