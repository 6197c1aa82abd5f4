"""The feed process collects less often and never rescans what it started with."""

from __future__ import annotations

import gc

from marketdata.gc_tuning import OLD_THRESHOLD, YOUNG_THRESHOLD, tune_for_streaming


def test_thresholds_are_raised_and_start_up_objects_frozen() -> None:
    before = gc.get_threshold()
    try:
        tune_for_streaming()
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD
        assert gc.get_threshold()[2] == OLD_THRESHOLD
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
