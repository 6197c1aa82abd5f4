"""The spill file: spool entries that could not reach Redis before shutdown, kept on local
disk until the next start appends them to the spool (and only then removes the file).

One entry per line, a JSON array: the stream, then the entry's field names and values,
all strings, e.g. ["spool:trades", "exchange", "binance_futures", "symbol", "BTCUSDT", ...].
Written whole to a temporary file and renamed over the old one, so a crash mid-write
leaves the previous spill, never half of one.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import orjson

from marketdata.redis_batch import Command


class SpillError(Exception):
    """The spill file cannot be read back."""


def write(path: Path, entries: Sequence[Command]) -> None:
    """Entries are XADD commands ("XADD", stream, "*", field, value, ...)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("wb") as out:
        for entry in entries:
            words = [x.decode() if isinstance(x, bytes) else str(x) for x in entry[1:2] + entry[3:]]
            out.write(orjson.dumps(words) + b"\n")
        out.flush()
        os.fsync(out.fileno())
    temporary.replace(path)


def read(path: Path) -> list[Command]:
    """The XADD commands held in the file (none if there is no file)."""
    try:
        lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        return []
    except OSError as e:
        raise SpillError(f"{path}: {e.strerror}") from e
    entries: list[Command] = []
    for number, line in enumerate(lines, 1):
        try:
            words = orjson.loads(line)
        except orjson.JSONDecodeError as e:
            raise SpillError(f"{path}:{number}: not JSON: {e}") from e
        if not (
            isinstance(words, list)
            and len(words) % 2 == 1
            and all(isinstance(w, str) for w in words)
        ):
            raise SpillError(f"{path}:{number}: expected [stream, field, value, ...]")
        entries.append(("XADD", words[0], "*", *words[1:]))
    return entries
