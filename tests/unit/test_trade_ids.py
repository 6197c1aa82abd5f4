from __future__ import annotations

from marketdata.trade_ids import TradeIds, Verdict

NEXT, REPEAT, GAP, RESTART, RETRACT = (
    Verdict.NEXT, Verdict.REPEAT, Verdict.GAP, Verdict.RESTART, Verdict.RETRACT,
)  # fmt: skip


def verdicts(ids: TradeIds, *trade_ids: int) -> list[Verdict]:
    return [ids.classify(i) for i in trade_ids]


def test_contiguous_ids_go_on_and_recent_ones_are_repeats() -> None:
    ids = TradeIds()
    assert verdicts(ids, 5, 6, 7, 6, 7, 8) == [NEXT, NEXT, NEXT, REPEAT, REPEAT, NEXT]
    assert ids.next_id == 9


def test_a_gap_names_the_ids_skipped_and_the_sequence_goes_on_after_it() -> None:
    ids = TradeIds()
    assert verdicts(ids, 5, 6, 10, 11) == [NEXT, NEXT, GAP, NEXT]
    assert ids.missing == (7, 9)
    assert verdicts(ids, 8) == [REPEAT]  # once confirmed, the ids below stay behind


def test_an_outlier_above_is_retracted_when_the_next_id_goes_back() -> None:
    ids = TradeIds()
    assert verdicts(ids, 100, 101, 2**52) == [NEXT, NEXT, GAP]
    assert verdicts(ids, 102) == [RETRACT]
    assert ids.retracted == 2**52
    assert verdicts(ids, 102, 103, 101, 104) == [NEXT, NEXT, REPEAT, NEXT]


def test_a_small_outlier_above_is_retracted_too() -> None:
    ids = TradeIds()
    assert verdicts(ids, 100, 101, 105, 102) == [NEXT, NEXT, GAP, RETRACT]
    assert verdicts(ids, 102, 103, 104, 105) == [NEXT, NEXT, NEXT, NEXT]


def test_an_outlier_far_below_is_retracted_when_the_old_sequence_goes_on() -> None:
    ids = TradeIds(repeat_window=1000)
    assert verdicts(ids, 50_000, 50_001, 7) == [NEXT, NEXT, RESTART]
    assert verdicts(ids, 50_002) == [RETRACT]
    assert verdicts(ids, 50_002, 50_003) == [NEXT, NEXT]


def test_a_real_restart_is_followed() -> None:
    ids = TradeIds(repeat_window=1000)
    assert verdicts(ids, 50_000, 7, 8, 9, 50_000) == [NEXT, RESTART, NEXT, NEXT, GAP]
