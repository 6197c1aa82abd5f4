"""The OKX micro-benchmark runs, every checksum holding; the peer agrees with us."""

from __future__ import annotations

import pytest

from bench import okx_core, okx_peer
from tests.okx_capture import INSTRUMENTS, load


def test_core_bench_loops_the_recording_with_every_checksum_holding() -> None:
    capture = load()
    frames = okx_core.looped(capture.frames, 2 * len(capture.frames) + 7)
    rate, tops = okx_core.parse_apply_verify(frames)
    assert rate > 0
    assert set(tops) == set(INSTRUMENTS)
    assert okx_core.run(500) > 0


def test_cryptofeed_peer_ends_with_our_books() -> None:
    pytest.importorskip("cryptofeed")
    capture = load()
    frames = okx_core.looped(capture.book_frames, len(capture.book_frames) + 50)
    _, tops = okx_core.parse_apply_verify(frames)
    assert okx_peer.cryptofeed_parse_apply_verify(frames, tops) > 0
    wrong = {inst: (bids[1:], asks) for inst, (bids, asks) in tops.items()}
    with pytest.raises(RuntimeError, match="differ from ours"):
        okx_peer.cryptofeed_parse_apply_verify(frames, wrong)
