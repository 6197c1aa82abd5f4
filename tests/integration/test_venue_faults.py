"""Every fault scenario on Binance spot and Kraken (futures has its own, test_faults.py),
with the three venues running together: the faulty venue recovers to the simulator's book,
and the other venues are untouched (no resync, no reconnect)."""

from __future__ import annotations

from typing import Any

import pytest

from marketdata.sim.scenarios import Scenario
from tests.integration.scenario_runner import metric
from tests.integration.test_venues_together import SYMBOLS
from tests.integration.test_venues_together import venues_run as venues_run  # the fixture

SCENARIOS = {  # fresh for each test: a run turns its scenario off to settle
    "gap": lambda: Scenario(gap_every=30),
    "reorder": lambda: Scenario(reorder_every=35),
    "duplicate": lambda: Scenario(duplicate_every=20),
    "disconnect": lambda: Scenario(disconnect_every=120),
    "malformed": lambda: Scenario(malformed_every=40),
    "oversize": lambda: Scenario(oversize_every=150),
}


def _touched(service: Any, venue: str) -> float:
    return sum(
        metric(service, "resyncs_total", exchange=venue, symbol=s)
        + metric(service, "ws_disconnects_total", exchange=venue, symbol=s, stream=stream)
        for s in SYMBOLS[venue]
        for stream in ("book", "trades", "ws")
    )


@pytest.mark.parametrize("name", list(SCENARIOS))
@pytest.mark.parametrize("faulty", ["binance_spot", "kraken"])
async def test_a_fault_is_recovered_and_kept_to_its_venue(
    faulty: str, name: str, redis_server: Any, venues_run: Any
) -> None:
    run = await venues_run({faulty: SCENARIOS[name]()})
    service = await run.start(redis_server.url)
    await run.collector.collect_until(lambda c: False, timeout_s=4.0)
    assert await run.settle(), f"{faulty} {name}: books did not reach the simulator's"
    for venue in run.venues:
        if venue != faulty:
            assert _touched(service, venue) == 0, (venue, "touched by a fault elsewhere")
    # A disconnect cannot go unnoticed, nor a lost diff on Binance; a lost Kraken update
    # shows only if it touched the top 10 levels its checksum covers.
    if name == "disconnect" or (name == "gap" and faulty != "kraken"):
        assert _touched(service, faulty) >= 1, (faulty, name)
