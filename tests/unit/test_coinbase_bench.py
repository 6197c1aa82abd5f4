"""The Coinbase micro-benchmark runs on the recording; cryptofeed's bids agree with ours."""

from __future__ import annotations

import pytest

from bench import coinbase_core, coinbase_peer
from tests.coinbase_capture import load


def test_core_bench_loops_the_recording_as_new_connections() -> None:
    capture = load()
    frames = coinbase_core.looped(capture.frames, len(capture.frames) + 40)
    rate, tops = coinbase_core.parse_apply(frames)
    assert rate > 0
    assert set(tops) == {"BTC-USD", "ETH-USD"}
    assert coinbase_core.updates_only(capture.frames, 1) > 0
    assert coinbase_core.snapshot_seconds(capture.frames) > 0


def test_cryptofeed_peer_ends_with_our_bids() -> None:
    pytest.importorskip("cryptofeed")
    capture = load()
    frames = capture.frames + capture.frames[:40]
    _, tops = coinbase_core.parse_apply(frames)
    texts = [f.decode() for f in frames]
    assert coinbase_peer.cryptofeed_parse_apply(texts, tops) > 0
    wrong = {p: (bids[1:], asks) for p, (bids, asks) in tops.items()}
    with pytest.raises(RuntimeError, match="differ from ours"):
        coinbase_peer.cryptofeed_parse_apply(texts, wrong)


def test_cryptofeed_peer_applies_every_update() -> None:
    pytest.importorskip("cryptofeed")
    frames = [f.decode() for f in load().frames]
    assert coinbase_peer.cryptofeed_updates_only(frames, 1) > 0
