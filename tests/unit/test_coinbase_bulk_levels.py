"""A large Coinbase snapshot is checked in bulk: it must take and refuse exactly what the
per-level check (decimal_value's rule) takes and refuses, and give the same levels."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketdata.venues.base import MalformedMessage
from marketdata.venues.coinbase.wire import _all_canonical, _levels, _many_levels

_CANONICAL = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_TEXT = st.text(alphabet="0123456789.\n +-_e٣", max_size=6)


def _floats(texts: list[str]) -> bool:
    try:
        list(map(float, texts))
    except ValueError:
        return False
    return True


@given(st.lists(st.one_of(_TEXT, st.from_regex(_CANONICAL, fullmatch=True)), min_size=1))
def test_the_bulk_form_check_with_float_is_the_canonical_form(texts: list[str]) -> None:
    bulk = _all_canonical(texts) and _floats(texts)
    assert bulk == all(_CANONICAL.fullmatch(text) for text in texts)


def _update(i: int, side: str) -> dict[str, Any]:
    return {"side": side, "event_time": "2026-08-09T21:05:48.1Z",
            "price_level": f"{100 + i}.5", "new_quantity": f"{i % 3}"}  # fmt: skip


@given(st.lists(st.sampled_from(["bid", "offer"]), min_size=300, max_size=400))
def test_bulk_levels_equal_the_per_level_ones_in_any_side_order(sides: list[str]) -> None:
    updates = [_update(i, side) for i, side in enumerate(sides)]
    assert _many_levels(updates, "X-Y") == _levels(updates, "X-Y")


@pytest.mark.parametrize("bad", ["5\n", "\n5", ".5", "5.", "", "1.2.3", " 5", "5 "])
def test_a_non_canonical_text_in_a_bulk_snapshot_is_refused(bad: str) -> None:
    updates = [_update(i, "bid") for i in range(300)]
    updates[7]["new_quantity"] = bad
    with pytest.raises(MalformedMessage) as refused:
        _many_levels(updates, "X-Y")
    assert refused.value.reason == "bad_number"
