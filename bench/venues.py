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

from bench import (
    bybit_core,
    bybit_peer,
    coinbase_core,
    coinbase_peer,
    core,
    kraken_core,
    kraken_peer,
    okx_core,
    okx_peer,
    peer,
    spot_core,
)
from bench.frames import looped_depth_frames
from marketdata.book import PriceLevel
from tests import coinbase_capture, okx_capture
from tests.kraken_v2 import convert

Tops = dict[str, tuple[list[PriceLevel], list[PriceLevel]]]


@dataclass(frozen=True)
class CoreCase:
    venue: str
    label: str  # what the frames are
    frames: list[bytes]  # as ours reads them (the floor loads these)
    ours: Callable[[], tuple[float, Tops]]
    peer: Callable[[Tops], float] | None  # None: cryptofeed is not installed
    note: str = ""  # what differs between ours and the peer's work, printed under the table


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


def okx(messages: int, with_peer: bool) -> CoreCase:
    """The books frames only (the peer is given no others); an eighth of `messages`: each
    carries a 400-level snapshot or an update with its checksum, and takes 3 to 6 times a
    Binance frame's time."""
    frames = okx_core.looped(okx_capture.load().book_frames, messages // 8)
    return CoreCase(
        venue="okx",
        label="real OKX v5 books frames (checksum on every one), the capture looped",
        frames=frames,
        ours=lambda: okx_core.parse_apply_verify(frames),
        peer=(lambda tops: okx_peer.cryptofeed_parse_apply_verify(frames, tops))
        if with_peer
        else None,
    )


def bybit(messages: int, with_peer: bool) -> CoreCase:
    frames = bybit_core.looped(bybit_core.frames(), messages)
    return CoreCase(
        venue="bybit",
        label="real Bybit v5 linear orderbook.200 and publicTrade frames, the capture looped",
        frames=frames,
        ours=lambda: bybit_core.parse_apply(frames),
        peer=(lambda tops: bybit_peer.cryptofeed_parse_apply(frames, tops)) if with_peer else None,
    )


_COINBASE_ASKS = (
    "cryptofeed reads a snapshot's asks as side 'ask' where Coinbase sends 'offer', so it "
    "drops half of every snapshot (its ask side holds only levels updated since)"
)


def coinbase_updates(messages: int, with_peer: bool) -> CoreCase:
    """The level2 update frames alone, the steady state: the snapshots are loaded outside
    the clock, on both sides. A third of `messages`, in whole loops of the capture."""
    recorded = coinbase_capture.load().frames
    update_frames = coinbase_core.update_frames(recorded)
    loops = max(1, messages // 3 // len(update_frames))
    texts = [frame.decode() for frame in recorded]
    return CoreCase(
        venue="coinbase_l2",
        label="real Coinbase level2 update frames alone, snapshots loaded untimed, looped",
        frames=update_frames * loops,
        ours=lambda: coinbase_core.updates_only_tops(recorded, loops),
        peer=(lambda tops: coinbase_peer.cryptofeed_updates_only(texts, loops, tops))
        if with_peer
        else None,
        note="coinbase_l2: the same frames, but cryptofeed's ask side holds only the levels "
        "updated since its snapshot (see coinbase_all), a smaller book to insert into",
    )


def coinbase_all(messages: int, with_peer: bool) -> CoreCase:
    """Every frame of the recorded connection, its two multi-MB snapshots included; a
    fifteenth of `messages`: one loop is 1,030 frames and 7.6 MB."""
    recorded = coinbase_capture.load().frames
    frames = coinbase_core.looped(recorded, max(len(recorded), messages // 15))
    texts = [frame.decode() for frame in frames]
    return CoreCase(
        venue="coinbase_all",
        label="every frame of the real Coinbase connection (5.1 and 2.5 MB snapshots), looped",
        frames=frames,
        ours=lambda: coinbase_core.parse_apply(frames),
        peer=(lambda tops: coinbase_peer.cryptofeed_parse_apply(texts, tops))
        if with_peer
        else None,
        note=f"coinbase_all: not the same work: {_COINBASE_ASKS}; its bids are checked "
        "level for level, its asks only not to go below ours",
    )


VENUES: dict[str, Callable[[int, bool], CoreCase]] = {
    "binance_futures": binance_futures,
    "binance_spot": binance_spot,
    "kraken": kraken,
    "okx": okx,
    "bybit": bybit,
    "coinbase_l2": coinbase_updates,
    "coinbase_all": coinbase_all,
}
