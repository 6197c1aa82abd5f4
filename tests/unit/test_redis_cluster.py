"""Redis Cluster naming and routing without a server: which slot each command goes to, the
spool's partitions, the config keys, and what the publisher sends with them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from redis.crc import key_slot

from marketdata.config import ConfigError, parse_config
from marketdata.events import Trade
from marketdata.metrics import Metrics
from marketdata.publish import Publisher
from marketdata.redis_batch import Command, ReplyError
from marketdata.redis_cluster import command_key, command_slot
from marketdata.redis_cluster_client import hash_tagged
from marketdata.refusals import Refusals
from marketdata.spool import SpoolCapacity, partition_of, spool_partitions, trade_entry
from marketdata.spool_appends import xadd
from marketdata.spool_partitions import SpoolPartitions
from tests.unit.test_publisher import synced_state

EXCHANGES = {"binance_futures": {"symbols": ["BTCUSDT"]}}


def test_each_command_goes_by_its_key_or_channel() -> None:
    assert command_key(("SPUBLISH", "orderbook:BTCUSDT", "{}")) == b"orderbook:BTCUSDT"
    assert command_key(("SET", "market_data:BTCUSDT", "{}", "EX", 300)) == b"market_data:BTCUSDT"
    assert command_key(("XADD", "spool:trades:{p1}", "*", "a", "1")) == b"spool:trades:{p1}"
    assert command_key(("EVALSHA", "abc", 2, "rest_budget:{x}", "rest_pause:{x}")) == (
        b"rest_budget:{x}"
    )
    assert command_key(("EVAL", "return 1", 0)) is None
    assert command_key(("PING",)) is None
    assert command_slot(("GET", "foo")) == key_slot(b"foo") == 12182


def test_a_spool_partition_is_one_slot_and_plain_redis_keeps_its_names() -> None:
    assert [p.both for p in spool_partitions(False, 1)] == [("spool:trades", "spool:books")]
    partitions = spool_partitions(True, 4)
    assert partitions[2].both == ("spool:trades:{p2}", "spool:books:{p2}")
    for p in partitions:
        assert key_slot(p.trades.encode()) == key_slot(p.books.encode())
    assert len({key_slot(p.trades.encode()) for p in partitions}) == 4


def test_a_symbol_keeps_its_partition() -> None:
    assert partition_of("binance_futures", "BTCUSDT", 3) == partition_of(
        "binance_futures", "BTCUSDT", 3
    )
    spread = {partition_of("binance_futures", f"S{i}USDT", 3) for i in range(30)}
    assert spread == {0, 1, 2}


def test_the_rest_budget_keys_share_a_slot_on_a_cluster_only() -> None:
    assert hash_tagged("rest_budget", "okx:default", False) == "rest_budget:okx:default"
    budget = hash_tagged("rest_budget", "okx:default", True)
    pause = hash_tagged("rest_pause", "okx:default", True)
    assert budget == "rest_budget:{okx:default}"
    assert key_slot(budget.encode()) == key_slot(pause.encode())


def test_cluster_keys_and_their_env_variables() -> None:
    config = parse_config(
        {"redis_url": "redis://10.0.0.5:7000", "spool": {"partitions": 6}, "exchanges": EXCHANGES},
        environ={"MARKETDATA_REDIS_CLUSTER": "true", "MARKETDATA_SHARDED_PUBSUB": "true"},
    )
    assert (config.redis_cluster, config.sharded_pubsub, config.spool.partitions) == (
        True,
        True,
        6,
    )
    assert not parse_config({"exchanges": EXCHANGES}, environ={}).redis_cluster


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"spool": {"partitions": 3}}, "spool.partitions: more than 1 needs redis_cluster: true"),
        ({"redis_cluster": True, "spool": {"partitions": 0}}, "spool.partitions:"),
        (
            {"redis_cluster": True, "redis_url": "redis://127.0.0.1:7000/2"},
            "redis_url: a Redis Cluster has only database 0",
        ),
        ({"redis_cluster": "yes"}, "redis_cluster: expected true or false"),
    ],
)
def test_bad_cluster_settings_name_their_key(raw: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config({**raw, "exchanges": EXCHANGES}, environ={})
    assert any(p.startswith(problem) for p in raised.value.problems), raised.value.problems


def test_moved_on_a_single_redis_connection_says_what_to_set() -> None:
    refusals = Refusals(Metrics().redis_command_refusals)
    refusals.record([("SET", "k", "v")], [ReplyError("MOVED 3999 127.0.0.1:7001")])
    (problem,) = refusals.problems()
    assert problem.startswith("SET refused: redis_url names a Redis Cluster: set redis_cluster")


def trade(symbol: str, i: int) -> Trade:
    return Trade("binance_futures", symbol, str(i), 0.0, 0.0, "1.5", "2", "buy", 1, 0.0)


def test_entries_go_to_their_symbols_partition_and_spilled_ones_are_rerouted() -> None:
    partitions = spool_partitions(True, 3)
    spool = SpoolPartitions(SpoolCapacity(3000), Metrics(), 1000, partitions)
    assert [p.capacity.max_entries for p in spool.partitions] == [1000] * 3
    symbols = [f"S{i}USDT" for i in range(12)]
    for i, symbol in enumerate(symbols):
        spool.add_trade(trade_entry(trade(symbol, i)))
    for symbol in symbols:
        k = partition_of("binance_futures", symbol, 3)
        commands = spool.partitions[k].pending()
        assert any(c[1] == partitions[k].trades and symbol in c for c in commands), symbol
    # An entry spilled by a single-Redis service goes to its symbol's partition here.
    done: list[bool] = []
    spilled = xadd("spool:trades", trade_entry(trade("BTCUSDT", 99)))
    spool.restore([spilled], lambda: done.append(True))
    k = partition_of("binance_futures", "BTCUSDT", 3)
    assert spool.partitions[k].trades[-1][1] == partitions[k].trades


class Recorder:
    """A CommandSender that accepts everything (XLEN: 0)."""

    def __init__(self) -> None:
        self.batches: list[list[Command]] = []

    async def send(self, commands: Sequence[Command]) -> list[Any]:
        self.batches.append(list(commands))
        return [0 if c[0] == "XLEN" else b"OK" for c in commands]

    async def close(self) -> None:
        pass


async def test_the_publisher_spublishes_and_spools_per_partition() -> None:
    recorder = Recorder()
    partitions = spool_partitions(True, 2)
    publisher = Publisher(
        recorder, book_depth=5, interval_s=0.0, market_data_ttl_s=60, metrics=Metrics(),
        spool=SpoolCapacity(10_000), spool_partitions=partitions, sharded_pubsub=True,
    )  # fmt: skip
    states = [synced_state(s) for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT")]
    for i, state in enumerate(states):
        publisher.trade(state, trade(state.symbol, i))
    assert await publisher.flush()
    (batch,) = recorder.batches
    names = {c[0] for c in batch}
    assert "PUBLISH" not in names
    assert {"SPUBLISH", "SET", "XADD", "XLEN"} <= names
    for state in states:
        k = partition_of("binance_futures", state.symbol, 2)
        (append,) = [c for c in batch if c[0] == "XADD" and state.symbol in c]
        assert append[1] == partitions[k].trades
    assert [c[1] for c in batch if c[0] == "XLEN"] == [s for p in partitions for s in p.both]
