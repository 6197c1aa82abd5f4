"""The Bybit micro-benchmark runs over the looped capture, every delta chaining."""

from __future__ import annotations

import pytest

from bench import bybit_core
from marketdata.venues.bybit import BookMessage, parse


def test_core_bench_loops_the_capture_with_every_delta_chaining() -> None:
    frames = bybit_core.frames()
    assert len(frames) == 1717
    rate, tops = bybit_core.parse_apply(bybit_core.looped(frames, 2 * len(frames) + 7))
    assert rate > 0
    assert sorted(tops) == ["BTCUSDT", "DOGEUSDT", "ETHUSDT", "SOLUSDT"]
    assert all(len(bids) == len(asks) == 20 for bids, asks in tops.values())
    assert bybit_core.run(500) > 0


def test_the_bench_fails_when_a_delta_is_missing() -> None:
    frames = bybit_core.frames()
    first_delta = next(
        i for i, f in enumerate(frames)
        if any(isinstance(e, BookMessage) and not e.snapshot for e in parse(f, 0.0))
    )  # fmt: skip
    with pytest.raises(RuntimeError, match="the chain broke"):
        bybit_core.parse_apply(frames[:first_delta] + frames[first_delta + 1 :])


def test_cryptofeed_peer_ends_with_our_books() -> None:
    pytest.importorskip("cryptofeed")
    from bench import bybit_peer

    frames = bybit_core.looped(bybit_core.frames(), 2000)
    _, tops = bybit_core.parse_apply(frames)
    assert bybit_peer.cryptofeed_parse_apply(frames, tops) > 0
    wrong = {symbol: (bids[1:], asks) for symbol, (bids, asks) in tops.items()}
    with pytest.raises(RuntimeError, match="differ from ours"):
        bybit_peer.cryptofeed_parse_apply(frames, wrong)
