"""Thousands of hostile frames through the parser and the symbol feed: refused with a
reason, never an unhandled exception."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from marketdata.venues.binance import BinanceFutures, MalformedMessage

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=4)
    ),
    max_leaves=12,
)
numbers = st.sampled_from(["1.5", "0", "-1", "NaN", "Infinity", "1e309", "", "abc", "0x10"])
levels = st.lists(st.lists(numbers | json_values, max_size=3), max_size=4)
depth_fields = st.fixed_dictionaries(
    {},
    optional={
        "e": st.sampled_from(["depthUpdate", "aggTrade", "bookTicker", "kline"]) | json_values,
        "E": st.integers() | json_values, "s": st.text(max_size=8) | json_values,
        "U": st.integers() | json_values, "u": st.integers() | json_values,
        "pu": st.integers() | json_values, "b": levels | json_values, "a": levels | json_values,
        "p": numbers | json_values, "q": numbers | json_values, "m": st.booleans() | json_values,
        "T": st.integers() | json_values, "B": numbers, "A": numbers,
    },
)  # fmt: skip


def _parse(frame: bytes) -> None:
    reason = None
    events = []
    try:
        events = list(BinanceFutures().parse(frame, 0.0))
    except MalformedMessage as e:
        reason = e.reason
    assert reason is None or reason.isidentifier()
    for event in events:
        assert event.symbol


@given(st.binary(max_size=300))
@settings(max_examples=2000)
def test_random_bytes(frame: bytes) -> None:
    _parse(frame)


@given(depth_fields, st.booleans())
@settings(max_examples=3000)
def test_structured_hostile_frames(data: dict, wrapped: bool) -> None:
    # stdlib json: it also writes NaN, Infinity and integers past 64 bits
    _parse(json.dumps({"stream": "x@depth", "data": data} if wrapped else data).encode())
