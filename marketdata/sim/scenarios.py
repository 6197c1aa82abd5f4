"""Faults the simulator can inject, each on every connection it serves (per-connection counts).

Each `*_every N` acts on every N-th frame of its kind on a connection; 0 turns it off.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

OVERSIZE_BYTES = 5 * 1024 * 1024  # over the 4 MiB a client accepts
MALFORMED = (b'{"stream":"x@depth","data":{"e":"depthUpdate",', b"\xff\xfe not json", b"[]")


@dataclass
class Scenario:
    gap_every: int = 0  # drop every N-th depth diff: the id chain breaks
    duplicate_every: int = 0  # send every N-th depth diff twice
    reorder_every: int = 0  # send every N-th depth diff after the one that follows it
    disconnect_every: int = 0  # close each connection after N frames...
    disconnect_streams: frozenset[str] = frozenset()  # ...carrying one of these ("aggtrade")
    silence_ms: int = 0  # a symbol's streams stop for this long (on every connection)...
    silence_every: int = 100  # ...after every N frames of one connection
    silence_symbols: frozenset[str] = frozenset()  # only these symbols (empty: all)
    silent_until: dict[str, float] = field(default_factory=dict)  # symbol -> loop time
    oversize_every: int = 0  # send a frame over the client's size limit every N frames
    malformed_every: int = 0  # send a malformed frame every N frames
    snapshot_status: int = 0  # answer snapshot requests with this HTTP status...
    snapshot_failures: int = 1  # ...this many times, then normally
    retry_after_s: float | None = None  # Retry-After header sent with 429/418
    snapshot_log: list[tuple[float, str, int]] = field(default_factory=list)  # (t, symbol, status)
    enabled: bool = True  # False: serve cleanly (tests let a market settle)


class Disconnect(Exception):
    """The scenario closes this connection now."""


def apply(
    scenario: Scenario, frames: AsyncIterator[bytes], streams: set[str]
) -> AsyncIterator[bytes]:
    """The frames of one connection, with the scenario's faults worked in."""
    return _diff_faults(scenario, _connection_faults(scenario, frames, streams))


async def _connection_faults(
    scenario: Scenario, frames: AsyncIterator[bytes], streams: set[str]
) -> AsyncIterator[bytes]:
    symbols = {s.split("@", 1)[0].upper() for s in streams}
    if scenario.silence_symbols:
        symbols &= scenario.silence_symbols
    silent = bool(scenario.silence_ms and symbols)
    cut_every = scenario.disconnect_every if _cut(scenario, streams) else 0
    sent = 0
    async for frame in frames:
        if not scenario.enabled:
            yield frame
            continue
        sent += 1
        if cut_every and sent % cut_every == 0:
            raise Disconnect
        if silent:
            await _keep_silence(scenario, symbols, start=sent % scenario.silence_every == 0)
        if scenario.malformed_every and sent % scenario.malformed_every == 0:
            yield MALFORMED[(sent // scenario.malformed_every) % len(MALFORMED)]
        if scenario.oversize_every and sent % scenario.oversize_every == 0:
            yield b'{"stream":"x","data":"' + b"x" * OVERSIZE_BYTES + b'"}'
        yield frame


def _cut(scenario: Scenario, streams: set[str]) -> bool:
    """Whether disconnect_every applies to a connection carrying these streams."""
    kinds = {k.lower() for k in scenario.disconnect_streams}
    return not kinds or any(kind in s.lower() for s in streams for kind in kinds)


async def _keep_silence(scenario: Scenario, symbols: set[str], start: bool) -> None:
    """Start a silence for these symbols, or wait out one that is under way."""
    now = asyncio.get_running_loop().time()
    if start:
        for symbol in symbols:
            scenario.silent_until[symbol] = now + scenario.silence_ms / 1000
    wait = max(scenario.silent_until.get(s, 0.0) for s in symbols) - now
    if wait > 0:
        await asyncio.sleep(wait)


async def _diff_faults(scenario: Scenario, frames: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    depth = 0
    held: bytes | None = None
    async for frame in frames:
        if held is not None and not scenario.enabled:
            yield held
            held = None
        if not scenario.enabled or b"depthUpdate" not in frame:
            yield frame
            continue
        depth += 1
        if scenario.gap_every and depth % scenario.gap_every == 0:
            continue
        if held is not None:
            yield frame
            yield held
            held = None
        elif scenario.reorder_every and depth % scenario.reorder_every == 0:
            held = frame
        else:
            yield frame
            if scenario.duplicate_every and depth % scenario.duplicate_every == 0:
                yield frame
