"""Faults the simulator can inject, each on every connection it serves (per-connection counts).

Each `*_every N` acts on every N-th frame of its kind on a connection; 0 turns it off.
The frame faults work on any dialect (a `Wire` says which frames are book diffs and what
a malformed one looks like); on Kraken a "diff" is a `book` update, whose checksum then
fails on the client. The Kraken-only knobs (checksum, rejected subscriptions) are worked
in by sim/kraken_server.py where it builds and answers; sim/okx_server.py does the same
for OKX (where a diff is a `books` update, and the upgrade notice is its own).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable, Collection
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
    checksum_corrupt_every: int = 0  # Kraken: every N-th book update has a wrong checksum
    reject_symbols: frozenset[str] = frozenset()  # Kraken: subscribing these fails
    reject_subscribes: int = 0  # Kraken: the first N subscribe requests of a connection fail
    # Coinbase: gap/duplicate/reorder act on every frame of a connection (its sequence_num
    # counts them all), and with disconnect_every only on connections carrying one of these
    # products (empty: every connection); reject_* answer with Coinbase's error frame.
    fault_symbols: frozenset[str] = frozenset()
    # OKX: checksum_corrupt_every breaks a `books` update's checksum (its prevSeqId when
    # checksums are off); reject_symbols / reject_subscribes answer error 60018.
    upgrade_notice_after_s: float = 0.0  # OKX: send 64008 this long into each connection...
    upgrade_close_s: float = 30.0  # ...and close it this long after the notice
    # Bybit: gap/duplicate/reorder act on `orderbook` deltas (u breaks: that symbol is
    # resubscribed; a reorder of two symbols' deltas breaks nothing); reject_symbols
    # answers "error:handler not found,topic:...", reject_subscribes "Params Error"
    # (naming no topic); no checksum to corrupt.
    restart_every: int = 0  # Bybit: every N-th book delta is a snapshot with u == 1 instead
    enabled: bool = True  # False: serve cleanly (tests let a market settle)
    # (fault, symbol) -> diffs of that symbol a gap/duplicate/reorder acted on (a reorder:
    # both frames it swapped), where the dialect names a diff's symbol (Wire.symbol_of)
    hits: Counter[tuple[str, str]] = field(default_factory=Counter)

    def refuses_snapshot(self, now: float, symbol: str) -> bool:
        """Whether this snapshot request is answered with `snapshot_status` (logged if so)."""
        if not (self.enabled and self.snapshot_status):
            return False
        failed = sum(1 for _, _, status in self.snapshot_log if status == self.snapshot_status)
        if failed >= self.snapshot_failures:
            return False
        self.snapshot_log.append((now, symbol, self.snapshot_status))
        return True

    def refusal_headers(self) -> dict[str, str]:
        if self.retry_after_s is None:
            return {}
        return {"Retry-After": f"{self.retry_after_s:g}"}


@dataclass(frozen=True)
class Wire:
    """What the frame faults need to know of one dialect's frames."""

    is_diff: Callable[[bytes], bool]  # a book diff: what gap/duplicate/reorder act on
    malformed: tuple[bytes, ...]  # sent in turn by malformed_every
    oversize_head: bytes  # an oversize frame: this, 5 MiB of "x", then '"}'
    symbol_of: Callable[[bytes], str] | None = None  # a diff's symbol, for Scenario.hits


def quoted_after(frame: bytes, key: bytes) -> str:
    """The text of the first `"key":"..."` in `frame` ("" if none): a diff's symbol."""
    start = frame.find(b'"' + key + b'":"')
    if start < 0:
        return ""
    start += len(key) + 4
    return frame[start : frame.find(b'"', start)].decode(errors="replace")


BINANCE = Wire(lambda frame: b"depthUpdate" in frame, MALFORMED, b'{"stream":"x","data":"')


class Disconnect(Exception):
    """The scenario closes this connection now."""


def apply(
    scenario: Scenario, frames: AsyncIterator[bytes], streams: set[str], wire: Wire = BINANCE
) -> AsyncIterator[bytes]:
    """The frames of one Binance connection carrying `streams`, with the faults worked in.
    A silence holds the whole connection back until it is over."""
    symbols = silenced(scenario, {s.split("@", 1)[0].upper() for s in streams})
    cut = _cut(scenario, streams)
    return faults(scenario, frames, wire, lambda: symbols, lambda: cut, wait=True)


def faults(
    scenario: Scenario,
    frames: AsyncIterator[bytes],
    wire: Wire,
    symbols: Callable[[], Collection[str]],
    cut: Callable[[], bool],
    wait: bool,
) -> AsyncIterator[bytes]:
    """The frames of one connection with the faults worked in. `symbols()`: those a silence
    would start for now; `cut()`: whether disconnect_every applies now; `wait`: whether
    this stage waits a silence out (else it only marks it, for the source to honour)."""
    return _diff_faults(
        scenario, _connection_faults(scenario, frames, wire, symbols, cut, wait), wire
    )


def silenced(scenario: Scenario, symbols: Collection[str]) -> set[str]:
    """Those of `symbols` a silence applies to."""
    if not scenario.silence_symbols:
        return set(symbols)
    return {s for s in symbols if s in scenario.silence_symbols}


def start_silence(scenario: Scenario, symbol: str) -> None:
    """`symbol` goes silent for `silence_ms` from now, on every connection."""
    if scenario.enabled:
        now = asyncio.get_running_loop().time()
        scenario.silent_until[symbol] = now + scenario.silence_ms / 1000


def is_silent(scenario: Scenario, symbol: str) -> bool:
    if not scenario.enabled or not scenario.silence_ms:
        return False
    return scenario.silent_until.get(symbol, 0.0) > asyncio.get_running_loop().time()


async def _connection_faults(
    scenario: Scenario,
    frames: AsyncIterator[bytes],
    wire: Wire,
    symbols: Callable[[], Collection[str]],
    cut: Callable[[], bool],
    wait: bool,
) -> AsyncIterator[bytes]:
    sent = 0
    async for frame in frames:
        if not scenario.enabled:
            yield frame
            continue
        sent += 1
        if scenario.disconnect_every and sent % scenario.disconnect_every == 0 and cut():
            raise Disconnect
        if scenario.silence_ms:
            silent = symbols()
            if silent:
                start = sent % scenario.silence_every == 0
                await _keep_silence(scenario, silent, start, wait)
        if scenario.malformed_every and sent % scenario.malformed_every == 0:
            yield wire.malformed[(sent // scenario.malformed_every) % len(wire.malformed)]
        if scenario.oversize_every and sent % scenario.oversize_every == 0:
            yield wire.oversize_head + b"x" * OVERSIZE_BYTES + b'"}'
        yield frame


def _cut(scenario: Scenario, streams: set[str]) -> bool:
    """Whether disconnect_every applies to a connection carrying these streams."""
    kinds = {k.lower() for k in scenario.disconnect_streams}
    return not kinds or any(kind in s.lower() for s in streams for kind in kinds)


async def _keep_silence(
    scenario: Scenario, symbols: Collection[str], start: bool, wait: bool
) -> None:
    """Start a silence for these symbols, or (`wait`) wait out one that is under way."""
    if start:
        for symbol in symbols:
            start_silence(scenario, symbol)
    if not wait:
        return
    now = asyncio.get_running_loop().time()
    left = max(scenario.silent_until.get(s, 0.0) for s in symbols) - now
    if left > 0:
        await asyncio.sleep(left)


async def _diff_faults(
    scenario: Scenario, frames: AsyncIterator[bytes], wire: Wire
) -> AsyncIterator[bytes]:
    depth = 0
    held: bytes | None = None
    is_diff = wire.is_diff

    def hit(fault: str, frame: bytes) -> None:
        if wire.symbol_of is not None:
            scenario.hits[fault, wire.symbol_of(frame)] += 1

    async for frame in frames:
        if held is not None and not scenario.enabled:
            yield held
            held = None
        if not scenario.enabled or not is_diff(frame):
            yield frame
            continue
        depth += 1
        if scenario.gap_every and depth % scenario.gap_every == 0:
            hit("gap", frame)
            continue
        if held is not None:
            hit("reorder", held)
            hit("reorder", frame)
            yield frame
            yield held
            held = None
        elif scenario.reorder_every and depth % scenario.reorder_every == 0:
            held = frame
        else:
            yield frame
            if scenario.duplicate_every and depth % scenario.duplicate_every == 0:
                hit("duplicate", frame)
                yield frame
