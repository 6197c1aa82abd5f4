"""bench/workers.py's symbol choice and bench/feed_server.py's pre-rendered frames."""

from __future__ import annotations

import pytest

from bench.feed_server import CHUNK_BYTES, render, ws_frame
from bench.workers import VENUE, balanced_symbols
from marketdata.shard import shard_of


@pytest.mark.parametrize(("count", "shards"), [(10, 2), (20, 2), (12, 3)])
def test_each_shard_holds_an_equal_share_of_the_symbols(count: int, shards: int) -> None:
    symbols = balanced_symbols(count, shards)
    assert len(set(symbols)) == count
    held = [shard_of(VENUE, s, shards) for s in symbols]
    assert [held.count(k) for k in range(shards)] == [count // shards] * shards


def test_a_count_that_cannot_split_evenly_is_refused() -> None:
    with pytest.raises(ValueError, match="do not split evenly"):
        balanced_symbols(11, 2)


def _unframe(data: bytes) -> list[bytes]:
    """Server (unmasked) text frames back to their payloads."""
    payloads, i = [], 0
    while i < len(data):
        assert data[i] == 0x81  # FIN, text
        n, i = data[i + 1], i + 2
        assert n & 0x80 == 0  # a server does not mask
        if n == 126:
            n, i = int.from_bytes(data[i : i + 2], "big"), i + 2
        elif n == 127:
            n, i = int.from_bytes(data[i : i + 8], "big"), i + 8
        payloads.append(data[i : i + n])
        i += n
    return payloads


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
def test_a_frame_of_any_length_reads_back(size: int) -> None:
    payload = b"x" * size
    assert _unframe(ws_frame(payload)) == [payload]


def test_rendered_chunks_hold_every_frame_renamed_in_order() -> None:
    frames = [
        b'{"stream":"sushiusdt@depth","data":{"s":"SUSHIUSDT","u":%d}}' % i for i in range(5000)
    ]
    chunks = render(frames, "W001USDT")
    assert len(chunks) > 1
    assert all(len(chunk) < 2 * CHUNK_BYTES for chunk in chunks)
    payloads = [p for chunk in chunks for p in _unframe(chunk)]
    assert payloads == [
        f.replace(b"SUSHIUSDT", b"W001USDT").replace(b"sushiusdt", b"w001usdt") for f in frames
    ]


def test_cpu_time_is_read_for_a_process_and_its_children() -> None:
    import os
    import subprocess
    import sys

    from bench.cpu import Usage, own_s, tree_s

    child = subprocess.Popen([sys.executable, "-c", "sum(range(3_000_000))"])
    try:
        assert tree_s(os.getpid()) >= own_s(os.getpid()) > 0
        usage = Usage({"bench": os.getpid()})
        cores = usage.cores()
        assert set(cores) == {"bench", "others"}
        assert all(used >= 0 for used in cores.values())
    finally:
        child.wait()
    assert own_s(child.pid) == 0.0  # gone
