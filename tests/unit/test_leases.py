"""Leases without a server: config, the fence's choice of commands, a round's balancing
over an in-memory store, and a publisher that forgets a symbol."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import yaml

from marketdata.cli import EXIT_CONFIG, main
from marketdata.config import ConfigError, parse_config
from marketdata.events import Trade
from marketdata.leases import Leases
from marketdata.leases_fence import Fence, FencedSender, Pair
from marketdata.leases_scripts import FENCED
from marketdata.metrics import Metrics
from marketdata.publish import Batch
from marketdata.redis_batch import Command
from tests.unit.test_publisher import publisher_on, synced_state

BTC, ETH, SOL = ("binance_futures", "BTCUSDT"), ("binance_futures", "ETHUSDT"), ("okx", "SOL-USDT")
EXCHANGES = {"binance_futures": {"symbols": ["BTCUSDT"]}}


def test_leases_are_off_by_default_and_checked() -> None:
    assert parse_config({"exchanges": EXCHANGES}, environ={}).leases.enabled is False
    raw = {"exchanges": EXCHANGES, "leases": {"ttl_s": 0.1, "instance_id": "a b"}}
    with pytest.raises(ConfigError) as raised:
        parse_config(raw, environ={})
    assert raised.value.problems == [
        "leases.ttl_s: 0.1 is outside 0.5..600",
        "leases.instance_id: 'a b' must be 1 to 64 letters, digits or . _ : - (or empty: "
        "hostname-pid-random)",
    ]
    env = {"MARKETDATA_LEASES_ENABLED": "true", "MARKETDATA_LEASES_INSTANCE_ID": "host-7"}
    leases = parse_config({"exchanges": EXCHANGES}, environ=env).leases
    assert (leases.enabled, leases.instance_id, leases.ttl_s) == (True, "host-7", 5.0)
    with pytest.raises(ConfigError) as raised:
        parse_config({"exchanges": EXCHANGES}, environ={"MARKETDATA_LEASES_ENABLED": "yes"})
    assert raised.value.problems == [
        "leases.enabled (from MARKETDATA_LEASES_ENABLED): expected true or false, got str 'yes'"
    ]


@pytest.mark.parametrize("flags", [["--shard", "0/2"], ["--workers", "2"]])
def test_shard_or_workers_with_leases_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"exchanges": EXCHANGES}))
    assert main(["run", "--config", str(config), "--leases", *flags]) == EXIT_CONFIG
    assert f"{flags[0]} cannot be combined with leases" in capsys.readouterr().err


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    """A CommandSender that answers OK to everything and keeps what it was sent."""

    def __init__(self) -> None:
        self.sent: list[list[Command]] = []

    async def send(self, commands: Sequence[Command]) -> list[Any]:
        self.sent.append(list(commands))
        return [b"OK"] * len(commands)

    async def close(self) -> None:
        pass


def test_the_fence_knows_which_symbol_a_command_writes_for() -> None:
    fence = Fence([BTC, SOL])
    assert fence.pair_of(("PUBLISH", "orderbook:BTCUSDT", "{}")) == BTC
    assert fence.pair_of(("SET", "market_data:okx:SOL-USDT", "{}", "EX", 5)) == SOL
    assert fence.pair_of(("PUBLISH", "trades:okx:SOL-USDT", "{}")) == SOL
    assert fence.pair_of(("SPUBLISH", "orderbook:BTCUSDT", "{}")) == BTC  # sharded_pubsub
    trade = ("XADD", "spool:trades", "*", "exchange", "okx", "symbol", "SOL-USDT", "price", "1")
    assert fence.pair_of(trade) is None  # the spool is history: never fenced
    assert fence.pair_of(("PUBLISH", "orderbook:ETHUSDT", "{}")) is None  # not configured
    assert fence.pair_of(("XLEN", "spool:trades")) is None


async def test_commands_go_under_the_lease_until_its_local_deadline() -> None:
    clock, inner, metrics = Clock(), Recorder(), Metrics()
    fence = Fence([BTC, ETH], clock)
    fence.grant(BTC, "a:7", 7, deadline=101.0)
    sender = FencedSender(inner, fence, metrics.lease_fenced_commands)
    publish_btc, publish_eth = (
        ("PUBLISH", "orderbook:BTCUSDT", "x"),
        ("PUBLISH", "orderbook:ETHUSDT", "y"),
    )
    assert await sender.send([publish_btc, publish_eth, ("XLEN", "s")]) == [b"OK", FENCED, b"OK"]
    script, sha = inner.sent[0][0], inner.sent[0][1][1]
    assert script[:2] == ("SCRIPT", "LOAD")  # before the first EVALSHA
    assert inner.sent[0][1:] == [
        ("EVALSHA", sha, 1, "lease:{binance_futures:BTCUSDT}", "a:7", *publish_btc),
        ("XLEN", "s"),
    ]
    clock.now = 101.0  # the deadline: Redis may have expired it by now
    assert await sender.send([publish_btc]) == [FENCED]
    assert inner.sent[-1] == [("PING",)]  # nothing sent but a PING
    fence.extend(BTC, 102.0)  # renewed
    assert await sender.send([publish_btc]) == [b"OK"]
    fence.revoke(BTC)
    assert await sender.send([publish_btc]) == [FENCED]
    local = {"exchange": "binance_futures", "where": "local"}
    counted = metrics.registry.get_sample_value
    assert counted("lease_fenced_commands_total", {**local, "symbol": "BTCUSDT"}) == 2
    assert counted("lease_fenced_commands_total", {**local, "symbol": "ETHUSDT"}) == 1


async def test_spool_entries_go_whoever_holds_their_symbol() -> None:
    """The spool is history (persist stores a trade once): an entry is never fenced away,
    neither one spilled by an earlier run nor one queued through a Redis outage."""
    inner, fence = Recorder(), Fence([BTC], Clock())
    sender = FencedSender(inner, fence, Metrics().lease_fenced_commands)
    entry = ("XADD", "spool:trades", "*", "exchange", "binance_futures", "symbol", "BTCUSDT")
    assert await sender.send([entry, ("PUBLISH", "trades:BTCUSDT", "x")]) == [b"OK", FENCED]
    assert inner.sent == [[entry]]


async def test_without_the_server_side_check_commands_go_as_they_are() -> None:
    inner, fence = Recorder(), Fence([BTC], Clock())
    fence.grant(BTC, "a:1", 1, deadline=200.0)
    sender = FencedSender(inner, fence, Metrics().lease_fenced_commands, server_side=False)
    assert await sender.send([("PUBLISH", "orderbook:BTCUSDT", "x")]) == [b"OK"]
    assert inner.sent == [[("PUBLISH", "orderbook:BTCUSDT", "x")]]


class MemoryStore:
    """The lease scripts' behaviour, in memory: `holders` maps a pair to its value."""

    instance_id = "me"

    def __init__(self, live: int = 1) -> None:
        self.live = live
        self.holders: dict[Pair, str] = {}
        self.tokens: dict[Pair, int] = {}
        self.pttl_ms: dict[Pair, int] = {}
        self.calls: list[str] = []

    async def heartbeat(self) -> int:
        return self.live

    async def renew(self, held: dict[Pair, str]) -> dict[Pair, bool]:
        return {p: self.holders.get(p) == v for p, v in held.items()}

    async def release(self, held: dict[Pair, str]) -> dict[Pair, bool]:
        self.calls.append(f"release {sorted(held)}")
        done = {p: self.holders.get(p) == v for p, v in held.items()}
        for pair, ok in done.items():
            if ok:
                del self.holders[pair]
        return done

    async def pttls(self, pairs: Sequence[Pair]) -> list[int]:
        return [self.pttl_ms.get(p, 3000) if p in self.holders else -2 for p in pairs]

    async def acquire(self, pairs: Sequence[Pair]) -> dict[Pair, int]:
        got = {}
        for pair in pairs:
            if pair not in self.holders:
                self.tokens[pair] = got[pair] = self.tokens.get(pair, 0) + 1
                self.holders[pair] = f"me:{got[pair]}"
        return got

    async def leave(self) -> None:
        pass


class Owner:
    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self.running: set[Pair] = set()

    def start(self, pairs: Sequence[Pair]) -> None:
        self.running |= set(pairs)

    async def stop(self, pairs: Sequence[Pair]) -> None:
        self.store.calls.append(f"stop {sorted(pairs)}")
        self.running -= set(pairs)


UNIVERSE = [("binance_futures", f"S{i}USDT") for i in range(5)]


def leases_on(store: MemoryStore, clock: Clock) -> tuple[Leases, Metrics]:
    metrics = Metrics()
    fence = Fence(UNIVERSE, clock)
    leases = Leases(store, fence, UNIVERSE, 3.0, metrics, clock)  # type: ignore[arg-type]
    return leases, metrics


async def test_a_round_takes_the_fair_share_and_gives_back_what_is_over_it() -> None:
    clock, store = Clock(), MemoryStore(live=1)
    leases, metrics = leases_on(store, clock)
    owner = Owner(store)
    assert await leases.round(owner) == 1.0  # TTL/3: nobody else's lease to wait for
    assert owner.running == set(UNIVERSE)
    assert leases.fence.valid(UNIVERSE[0], 102.6) is not None  # 90% of the TTL
    assert leases.fence.valid(UNIVERSE[0], 102.7) is None
    assert metrics.registry.get_sample_value("leases_owned") == 5

    store.live = 2  # another instance: the share is ceil(5 / 2) = 3
    clock.now = 101.0
    await leases.round(owner)
    given = sorted(UNIVERSE)[3:]
    assert store.calls == [f"stop {given}", f"release {given}"]  # stopped first
    assert owner.running == set(sorted(UNIVERSE)[:3])
    assert leases.describe()["owned"] == 3
    change = {"exchange": "binance_futures", "symbol": given[0][1], "change": "released"}
    assert metrics.registry.get_sample_value("lease_changes_total", change) == 1


async def test_a_lease_another_instance_holds_now_is_lost_and_its_feed_stopped() -> None:
    clock, store = Clock(), MemoryStore(live=1)
    leases, metrics = leases_on(store, clock)
    owner = Owner(store)
    await leases.round(owner)
    store.live = 5  # a share of 1 each...
    store.holders[UNIVERSE[0]] = "other:2"  # ...and one lease went to another instance
    store.pttl_ms[UNIVERSE[0]] = 250
    clock.now = 101.0
    wait = await leases.round(owner)
    assert UNIVERSE[0] not in owner.running
    assert len(owner.running) == 1
    assert wait == pytest.approx(0.27)  # just after the other's lease may expire
    lost = {"exchange": "binance_futures", "symbol": UNIVERSE[0][1], "change": "lost"}
    assert metrics.registry.get_sample_value("lease_changes_total", lost) == 1


async def test_leases_past_their_local_deadline_are_given_up_without_redis() -> None:
    clock, store = Clock(), MemoryStore(live=1)
    leases, _ = leases_on(store, clock)
    owner = Owner(store)
    await leases.round(owner)
    clock.now = 103.0  # a pause: no renewal for a whole TTL
    assert sorted(leases.fence.expired(clock())) == sorted(UNIVERSE)


async def test_a_master_that_does_not_answer_costs_only_its_own_leases() -> None:
    """On a cluster one master can fail alone: the leases it holds are not known this round
    (kept until their local deadline), the others are renewed, the heartbeat's failure
    does not stop the renewals, and nothing is balanced on such a partial view."""
    clock, store = Clock(), MemoryStore(live=1)
    leases, _ = leases_on(store, clock)
    owner = Owner(store)
    await leases.round(owner)
    down = ConnectionError("master 127.0.0.1:7001 down")
    answered = store.renew

    async def renew(held: dict[Pair, str]) -> dict[Pair, bool | BaseException]:
        replies: dict[Pair, bool | BaseException] = dict(await answered(held))
        replies[UNIVERSE[0]] = down
        return replies

    async def heartbeat() -> int:
        raise down

    store.renew = renew  # type: ignore[method-assign]
    store.heartbeat = heartbeat  # type: ignore[method-assign]
    store.live = 2  # would halve the share, were the heartbeat read
    clock.now = 102.0
    with pytest.raises(ConnectionError):
        await leases.round(owner)
    assert owner.running == set(UNIVERSE)  # nothing lost, nothing released
    assert leases.fence.valid(UNIVERSE[1], 104.6) is not None  # renewed at 102
    assert leases.fence.valid(UNIVERSE[0], 104.6) is None  # still the deadline of 100
    assert leases.fence.valid(UNIVERSE[0], 102.6) is not None


async def test_while_shutdown_drains_rounds_only_renew() -> None:
    clock, store = Clock(), MemoryStore(live=1)
    leases, _ = leases_on(store, clock)
    owner = Owner(store)
    await leases.round(owner)
    leases.hold()
    store.live = 5  # over the share now, and one lease went to another instance
    store.holders[UNIVERSE[0]] = "other:2"
    clock.now = 102.0
    assert await leases.round(owner) == 1.0
    assert store.calls == []  # nothing released, no feed stopped (they are closing)
    assert leases.fence.valid(UNIVERSE[1], 104.6) is not None  # renewed at 102
    assert leases.fence.valid(UNIVERSE[0], 102.0) is None  # lost: fenced at once


def test_an_unregistered_symbol_is_not_published_any_more() -> None:
    publisher = publisher_on(fakeredis.FakeAsyncRedis(), 0.1, Metrics())
    state, other = synced_state(), synced_state("ETHUSDT")
    trade = Trade("binance_futures", "BTCUSDT", 7, 1.5, 2.0, "1.5", "2", "buy", 1, 0.0)
    publisher.trade(state, trade)
    publisher.trade(other, trade)
    publisher.unregister(state)
    assert publisher.pending_trades == 1  # the other symbol's
    publisher.book_changed(state)
    publisher.trade(state, trade)
    assert publisher.pending_trades == 1


def test_a_symbol_unregistered_while_its_batch_was_out_is_not_put_back() -> None:
    """A failed batch gives its books and trades back, but not a symbol gone meanwhile (its
    lease lost): re-acquired later, it starts from its new feed, not from stale data."""
    publisher = publisher_on(fakeredis.FakeAsyncRedis(), 0.1, Metrics())
    state, other = synced_state(), synced_state("ETHUSDT")
    trade = Trade("binance_futures", "BTCUSDT", 7, 1.5, 2.0, "1.5", "2", "buy", 1, 0.0)
    batch = Batch([], [(state, 1.0), (other, 1.0)], deque([(state, trade), (other, trade)]))
    publisher.unregister(state)
    publisher._give_back(batch)
    assert publisher.pending_trades == 1  # the other symbol's
    assert list(publisher._dirty) == [other]
