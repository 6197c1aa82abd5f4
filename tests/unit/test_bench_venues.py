"""`python -m bench` core cases: every venue's peer ends with our books; progress shows."""

from __future__ import annotations

import io

import pytest

from bench import core_cases
from bench.progress import Progress
from bench.venues import VENUES

SMALL = 1500  # frames: past one loop of each capture's depth diffs, or of Kraken's, not far


@pytest.mark.parametrize("venue", list(VENUES))
def test_peer_ends_with_the_same_book_tops_as_ours(venue: str) -> None:
    pytest.importorskip("cryptofeed")
    case = VENUES[venue](SMALL, True)
    assert case.peer is not None
    rate, tops = case.ours()
    assert rate > 0
    assert tops
    assert all(bids and asks for bids, asks in tops.values())
    assert case.peer(tops) > 0  # raises unless its final books equal these tops
    symbol = next(iter(tops))
    bids, asks = tops[symbol]
    off_by_one_level = dict(tops, **{symbol: (bids, asks[1:])})
    with pytest.raises(RuntimeError, match="differ from ours"):
        case.peer(off_by_one_level)


def test_without_the_peer_the_table_says_so() -> None:
    out = io.StringIO()
    results = core_cases.run_venues(["binance_spot"], 300, 2, None, Progress(out))
    row = results["core"]["binance_spot"]
    assert row["messages"] == 300
    assert "peer_msgs_per_s" not in row
    assert out.getvalue().count("core binance_spot run ") == 2
    table = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.stdout", table)
        core_cases.print_table(results)
    assert "not installed" in table.getvalue()


def test_progress_lines_name_the_case_its_time_and_figure() -> None:
    out = io.StringIO()
    progress = Progress(out)
    started = progress.start("core kraken")
    progress.end("core kraken", started, "ours 1 msgs/s")
    first, second = out.getvalue().splitlines()
    assert first.endswith("core kraken ...")
    assert second.startswith("[")
    assert second.endswith(" s)")
    assert "core kraken: ours 1 msgs/s (" in second
