"""Static placement: shards are disjoint, cover every pair, stay put when symbols are added,
and split a config about as evenly as random placement would."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from marketdata.cli import main
from marketdata.config import Config, parse_config
from marketdata.shard import Shard, describe_shard, pairs, parse_shard, shard_config, spread

REPO = Path(__file__).parents[2]
BASES = (
    "BTC ETH SOL XRP DOGE ADA AVAX LINK DOT MATIC LTC BCH TRX UNI ATOM ETC FIL APT ARB OP NEAR "
    "INJ SUI SEI TIA PEPE WIF BONK JUP RNDR FET AAVE MKR CRV LDO SNX COMP GRT SAND MANA AXS APE "
    "GMT DYDX IMX STX ALGO XLM VET EOS"
).split()


def _config(
    futures: list[str],
    spot: tuple[str, ...] | list[str] = (),
    kraken: tuple[str, ...] | list[str] = (),
) -> Config:
    exchanges: dict[str, dict[str, list[str]]] = {"binance_futures": {"symbols": futures}}
    if spot:
        exchanges["binance_spot"] = {"symbols": list(spot)}
    if kraken:
        exchanges["kraken"] = {"symbols": list(kraken)}
    return parse_config({"exchanges": exchanges}, environ={})


def _realistic_300() -> Config:
    return _config(
        [f"{b}USDT" for b in BASES] + [f"{b}USDC" for b in BASES],
        [f"{b}USDT" for b in BASES] + [f"{b}BTC" for b in BASES],
        [f"{b}/USD" for b in BASES] + [f"{b}/EUR" for b in BASES],
    )


@pytest.mark.parametrize("text", ["0/1", "0/2", "1/2", "7/8", " 3/4 "])
def test_valid_shards_parse(text):
    shard = parse_shard(text)
    assert str(shard) == text.strip()


@pytest.mark.parametrize("text", ["2/2", "0/0", "-1/2", "1", "a/b", "1/2/3", ""])
def test_invalid_shards_are_refused(text):
    with pytest.raises(ValueError, match="K/N|N must|K must"):
        parse_shard(text)


@pytest.mark.parametrize("count", [1, 2, 3, 4, 8, 16])
def test_shards_are_disjoint_and_cover_every_pair(count):
    config = _realistic_300()
    every = pairs(config)
    assert len(every) == 300
    shards = [set(pairs(shard_config(config, Shard(k, count)))) for k in range(count)]
    assert sum(len(s) for s in shards) == len(every)  # disjoint
    assert set().union(*shards) == set(every)  # complete


def test_adding_symbols_moves_no_other_symbol():
    before = _config(["BTCUSDT", "ETHUSDT", "SOLUSDT"], ["BTCUSDT"], ["BTC/USD"])
    after = _config(
        ["AAVEUSDT", "BTCUSDT", "XRPUSDT", "ETHUSDT", "SOLUSDT", "DOGEUSDT"],
        ["ETHUSDT", "BTCUSDT"],
        ["ETH/USD", "BTC/USD"],
    )
    for count in (2, 3, 4):
        for k in range(count):
            kept = set(pairs(shard_config(before, Shard(k, count))))
            assert kept <= set(pairs(shard_config(after, Shard(k, count)))), (k, count)


def test_a_venue_left_without_symbols_is_removed_and_an_empty_shard_is_said_so():
    config = _config(["ETHUSDT"], kraken=["BTC/USD"])
    owners = {
        pair: k for k in range(8) for pair in pairs(shard_config(config, Shard(k, 8)))
    }  # fmt: skip
    assert owners[("binance_futures", "ETHUSDT")] != owners[("kraken", "BTC/USD")]
    futures_only = shard_config(config, Shard(owners[("binance_futures", "ETHUSDT")], 8))
    assert list(futures_only.exchanges) == ["binance_futures"]
    empty = next(k for k in range(8) if k not in owners.values())
    none = shard_config(config, Shard(empty, 8))
    assert none.exchanges == {}
    assert "no configured symbol falls in this shard" in describe_shard(none, Shard(empty, 8))
    # The rest of the config is untouched.
    assert (none.redis_url, none.spool, none.health_port) == (
        config.redis_url,
        config.spool,
        config.health_port,
    )


@pytest.mark.parametrize("count", [2, 3, 4, 8])
def test_300_symbols_spread_about_as_evenly_as_random_placement(count):
    realistic = spread(pairs(_realistic_300()), count)
    series = spread([("binance_futures", f"SYM{i}USDT") for i in range(300)], count)
    mean = 300 / count
    for sizes in (realistic, series):
        assert sum(sizes) == 300
        # Random placement: each shard within ~3 standard deviations of the mean.
        assert max(abs(s - mean) for s in sizes) <= 3 * math.sqrt(mean), sizes


def test_the_default_config_splits_in_two():
    every = pairs(parse_config(_yaml(REPO / "config.yaml"), environ={}))
    sizes = spread(every, 2)
    assert sum(sizes) == len(every)  # every pair in one shard
    assert min(sizes) >= len(every) // 4, sizes  # and neither shard near empty


def _yaml(path: Path) -> object:
    import yaml

    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--shard", "2/2"], "--shard"),
        (["--shard", "x"], "--shard"),
        (["--workers", "0"], "--workers"),
        (["--workers", "many"], "--workers"),
    ],
)
def test_a_bad_flag_value_exits_2_naming_the_flag(argv, flag, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["run", "--config", str(REPO / "config.yaml"), *argv])
    assert exited.value.code == 2
    assert f"argument {flag}:" in capsys.readouterr().err


def test_shard_and_workers_together_exit_2(capsys):
    code = main(["run", "--config", str(REPO / "config.yaml"), "--workers", "2", "--shard", "0/2"])
    assert code == 2
    assert "--shard and --workers" in capsys.readouterr().err
