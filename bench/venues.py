"""Per-venue core cases: our parse + sync + book apply, and cryptofeed 2.4.1's own handler
for the same venue, on the same real frames (a capture looped), with no I/O.

Each case is built once (frames prepared outside any clock); `ours` returns its msgs/s and
each book's top 20 levels a side at the end, `peer` its msgs/s after checking that its
final books equal those tops level for level (it raises otherwise: the figures would mean
nothing). `peer` is None when cryptofeed is not installed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bench import core, kraken_core, kraken_peer, peer, spot_core
from bench.frames import looped_depth_frames
from marketdata.book import PriceLevel
from tests.kraken_v2 import convert

Tops = dict[str, tuple[list[PriceLevel], list[PriceLevel]]]


@dataclass(frozen=True)
class CoreCase:
    venue: str
    label: str  # what the frames are
    frames: list[bytes]  # as ours reads them (the floor loads these)
    ours: Callable[[], tuple[float, Tops]]
    peer: Callable[[Tops], float] | None  # None: cryptofeed is not installed


def binance_futures(messages: int, with_peer: bool) -> CoreCase:
    snapshots, frames = looped_depth_frames(messages)
    return CoreCase(
        venue="binance_futures",
        label="real Binance futures depth frames, the capture looped",
        frames=frames,
        ours=lambda: core.parse_sync_apply(snapshots, frames),
        peer=(lambda tops: peer.cryptofeed_parse_sync_apply(snapshots, frames, tops))
        if with_peer
        else None,
    )


def binance_spot(messages: int, with_peer: bool) -> CoreCase:
    snapshots, frames = spot_core.looped_spot_frames(messages)
    return CoreCase(
        venue="binance_spot",
        label="real Binance spot depth frames, the capture looped",
        frames=frames,
        ours=lambda: spot_core.core(snapshots, frames),
        peer=(lambda tops: spot_core.cryptofeed(snapshots, frames, tops)) if with_peer else None,
    )


def kraken(messages: int, with_peer: bool) -> CoreCase:
    capture = convert(trim=True)
    ours_frames = kraken_core.looped(capture.frames, messages)
    v1_frames = kraken_peer.looped_v1(capture, messages)
    return CoreCase(
        venue="kraken",
        label="real Kraken book frames: ours as v2 (rewritten), cryptofeed's v1 as recorded",
        frames=ours_frames,
        ours=lambda: kraken_core.parse_apply_verify(capture, ours_frames),
        peer=(lambda tops: kraken_peer.cryptofeed_parse_apply_verify(capture, v1_frames, tops))
        if with_peer
        else None,
    )


VENUES: dict[str, Callable[[int, bool], CoreCase]] = {
    "binance_futures": binance_futures,
    "binance_spot": binance_spot,
    "kraken": kraken,
}
