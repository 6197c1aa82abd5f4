"""The Kraken micro-benchmark runs, every checksum holding; the peer agrees with us."""

from __future__ import annotations

import pytest

from bench import kraken_core, kraken_peer
from tests.kraken_v2 import convert


def test_core_bench_loops_the_capture_with_every_checksum_holding() -> None:
    capture = convert(trim=True)
    frames = kraken_core.looped(capture.frames, 2 * len(capture.frames) + 7)
    rate, tops = kraken_core.parse_apply_verify(capture, frames)
    assert rate > 0
    assert set(tops) == set(capture.precisions)
    assert kraken_core.run(500, capture) > 0


def test_cryptofeed_peer_ends_with_our_books() -> None:
    pytest.importorskip("cryptofeed")
    capture = convert(trim=True)
    total = len(capture.frames) + 100
    _, tops = kraken_core.parse_apply_verify(capture, kraken_core.looped(capture.frames, total))
    frames = kraken_peer.looped_v1(capture, total)
    assert kraken_peer.cryptofeed_parse_apply_verify(capture, frames, tops) > 0
    wrong = {pair: (bids[1:], asks) for pair, (bids, asks) in tops.items()}
    with pytest.raises(RuntimeError, match="differ from ours"):
        kraken_peer.cryptofeed_parse_apply_verify(capture, frames, wrong)
