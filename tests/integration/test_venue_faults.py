"""Every fault scenario on Binance spot, Kraken, OKX, Bybit and Coinbase (Binance futures
has its own, test_faults.py), with all six venues running together from one config: the
faulty venue recovers to the simulator's book, and the other venues are untouched (no
resync, no reconnect).

The simulator counts its faults per connection (sim/scenarios.py). It says which symbol a
gap, repeat or swap hit on OKX and Bybit (Scenario.hits), not on the other dialects. What
each case asserts beyond recovery follows from that:
- OKX and Bybit run their default of one symbol per connection, so every connection's
  every N-th book update is its own symbol's: every symbol is hit. A lost, repeated or
  swapped update breaks that symbol's chain (OKX prevSeqId/seqId, Bybit's u; a repeat
  cannot be told from a break there), so each symbol resyncs at least once; none
  reconnects, since a break resubscribes the one symbol; and no symbol resyncs more often
  than the faults hit it. With both symbols on one connection (the second test), that
  bound is what keeps a break to the symbol it hit.
- Coinbase runs both products on one connection, whose `sequence_num` counts every frame:
  a lost, repeated or swapped frame cannot say whose it was, so every product of the
  connection resyncs, each time, and by the same count.
- A disconnect is noticed by every symbol of the venue; so is an oversize frame where it is
  past the client's frame limit (OKX 1 MiB, Bybit 4 MiB: the connection fails), while
  Coinbase (32 MiB, sized for its snapshots) reads and skips it. Malformed frames are
  extra frames, not in place of a diff: OKX, Bybit and Coinbase skip them (counted in
  messages_error), and resync and reconnect nothing.
- Binance spot: a lost diff always breaks its id chain. Kraken: a lost update shows only if
  it touched the top levels its checksum covers, so only recovery is asserted there.
"""

from __future__ import annotations

from typing import Any

import pytest

from marketdata.sim.scenarios import Scenario
from tests.integration.scenario_runner import metric
from tests.integration.test_venues_together import ALL, SYMBOLS
from tests.integration.test_venues_together import venues_run as venues_run  # the fixture

SCENARIOS = {  # fresh for each test: a run turns its scenario off to settle
    "gap": lambda: Scenario(gap_every=30),
    "reorder": lambda: Scenario(reorder_every=35),
    "duplicate": lambda: Scenario(duplicate_every=20),
    "disconnect": lambda: Scenario(disconnect_every=120),
    "malformed": lambda: Scenario(malformed_every=40),
    "oversize": lambda: Scenario(oversize_every=150),
}
FAULTY = ["binance_spot", "kraken", "okx", "bybit", "coinbase"]
OPTIONS = {"coinbase": {"symbols_per_connection": 2}}  # one connection, one sequence_num
SHARED = {venue: {"symbols_per_connection": 2} for venue in ("okx", "bybit", "coinbase")}
CHAINS = ("gap", "reorder", "duplicate")  # faults that break a venue's update chain


def _resyncs(service: Any, venue: str, symbol: str) -> float:
    return metric(service, "resyncs_total", exchange=venue, symbol=symbol)


def _disconnects(service: Any, venue: str, symbol: str) -> float:
    return sum(
        metric(service, "ws_disconnects_total", exchange=venue, symbol=symbol, stream=stream)
        for stream in ("book", "trades", "ws")
    )


def _touched(service: Any, venue: str) -> float:
    return sum(
        _resyncs(service, venue, s) + _disconnects(service, venue, s) for s in SYMBOLS[venue]
    )


def _skipped(service: Any) -> float:
    """Frames skipped as malformed, for any reason, on any venue."""
    return sum(
        sample.value
        for family in service.metrics.registry.collect()
        if family.name == "messages_error"
        for sample in family.samples
        if sample.name == "messages_error_total"
    )


def _hit(scenario: Scenario, name: str, symbol: str) -> int:
    """How many of `symbol`'s diffs the `name` fault acted on (OKX and Bybit say)."""
    return scenario.hits[name, symbol]


def _within_hits(service: Any, venue: str, name: str, scenario: Scenario) -> None:
    """No symbol resyncs more often than the fault hit its diffs: each lost, repeated or
    swapped diff breaks its own symbol's chain once at most (a break while the symbol
    waits for its new snapshot shows nothing), and another symbol's break none."""
    for symbol in SYMBOLS[venue]:
        resyncs, hits = _resyncs(service, venue, symbol), _hit(scenario, name, symbol)
        assert resyncs <= hits, (venue, name, symbol, resyncs, scenario.hits)


def _expect(service: Any, venue: str, name: str, scenario: Scenario) -> None:
    """What the fault must have done to `venue` beyond its recovery (see the docstring)."""
    symbols = SYMBOLS[venue]
    resyncs = {s: _resyncs(service, venue, s) for s in symbols}
    disconnects = {s: _disconnects(service, venue, s) for s in symbols}
    seen = (venue, name, resyncs, disconnects)
    if name == "disconnect":
        assert all(disconnects.values()), seen
    elif venue == "binance_spot" and name == "gap":
        assert sum(resyncs.values()) >= 1, seen
    elif venue in ("okx", "bybit"):
        if name in CHAINS:
            assert all(_hit(scenario, name, s) for s in symbols), (seen, scenario.hits)
            assert all(resyncs.values()), seen
            _within_hits(service, venue, name, scenario)
            assert not any(disconnects.values()), seen
        elif name == "oversize":
            assert all(disconnects.values()), seen
        elif name == "malformed":
            assert _skipped(service) >= 1, seen
            assert not any(resyncs.values()), seen
            assert not any(disconnects.values()), seen
    elif venue == "coinbase":
        if name in CHAINS:
            assert all(resyncs.values()), seen
            assert len(set(resyncs.values())) == 1, seen  # every product, every time
            assert not any(disconnects.values()), seen
        elif name in ("malformed", "oversize"):
            assert _skipped(service) >= 1, seen
            assert not any(resyncs.values()), seen
            assert not any(disconnects.values()), seen


@pytest.mark.parametrize("name", list(SCENARIOS))
@pytest.mark.parametrize("faulty", FAULTY)
async def test_a_fault_is_recovered_and_kept_to_its_venue(
    faulty: str, name: str, redis_server: Any, venues_run: Any
) -> None:
    scenario = SCENARIOS[name]()
    run = await venues_run({faulty: scenario}, venues=ALL, options=OPTIONS)
    service = await run.start(redis_server.url)
    await run.collector.collect_until(lambda c: False, timeout_s=4.0)
    assert await run.settle(), f"{faulty} {name}: books did not reach the simulator's"
    for venue in run.venues:
        if venue != faulty:
            assert _touched(service, venue) == 0, (venue, "touched by a fault elsewhere")
    _expect(service, faulty, name, scenario)


@pytest.mark.parametrize("name", ["gap", "duplicate"])
@pytest.mark.parametrize("faulty", ["okx", "bybit"])
async def test_on_a_shared_connection_a_break_resyncs_the_symbols_it_hit_only(
    faulty: str, name: str, redis_server: Any, venues_run: Any
) -> None:
    """Both symbols on one connection: the faults land on whichever symbol's update is
    the N-th of the connection (often the same one, as the two take turns), and a symbol
    resyncs no more often than they hit it (not at all if never); the connection stays
    up."""
    scenario = SCENARIOS[name]()
    run = await venues_run({faulty: scenario}, venues=ALL, options=SHARED)
    service = await run.start(redis_server.url)
    await run.collector.collect_until(lambda c: False, timeout_s=4.0)
    assert await run.settle(), f"{faulty} {name}: books did not reach the simulator's"
    assert sum(_resyncs(service, faulty, s) for s in SYMBOLS[faulty]), scenario.hits
    _within_hits(service, faulty, name, scenario)
    assert not any(_disconnects(service, faulty, s) for s in SYMBOLS[faulty])
    for venue in run.venues:
        if venue != faulty:
            assert _touched(service, venue) == 0, (venue, "touched by a fault elsewhere")
