"""rest_budget and exchanges.<binance venue>.rest_weight_per_min: defaults, env, key paths."""

from __future__ import annotations

from typing import Any

import pytest

from marketdata.config import ConfigError, parse_config


def raw(**top: Any) -> dict[str, Any]:
    futures = top.pop("futures", {})
    return {"exchanges": {"binance_futures": {"symbols": ["BTCUSDT"], **futures}}, **top}


def problems(config: dict[str, Any], environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as e:
        parse_config(config, environ=environ or {})
    return e.value.problems


def test_off_by_default_with_the_default_label_and_the_venues_own_limits() -> None:
    config = parse_config(
        {"exchanges": {"binance_futures": {"symbols": ["BTCUSDT"]},
                       "binance_spot": {"symbols": ["BTCUSDT"]}}}, environ={},
    )  # fmt: skip
    assert (config.rest_budget.shared, config.rest_budget.ip_label) == (False, "default")
    assert config.exchanges["binance_futures"].rest_weight_per_min == 2400  # type: ignore[attr-defined]
    assert config.exchanges["binance_spot"].rest_weight_per_min == 6000  # type: ignore[attr-defined]


def test_the_ip_label_comes_from_the_environment() -> None:
    config = parse_config(
        raw(rest_budget={"shared": True, "ip_label": "file"}),
        environ={"MARKETDATA_REST_IP_LABEL": "nat-eu-1"},
    )
    assert (config.rest_budget.shared, config.rest_budget.ip_label) == (True, "nat-eu-1")


@pytest.mark.parametrize("label", ["", "has space", "{braces}", "x" * 65])
def test_a_label_unfit_for_a_redis_key_is_refused(label: str) -> None:
    found = problems(raw(rest_budget={"ip_label": label}))
    assert len(found) == 1, found
    assert found[0].startswith("rest_budget.ip_label: "), found


def test_a_bad_label_from_the_environment_names_the_variable() -> None:
    found = problems(raw(), {"MARKETDATA_REST_IP_LABEL": "two words"})
    assert found[0].startswith("rest_budget.ip_label (from MARKETDATA_REST_IP_LABEL): "), found


def test_wrong_types_and_keys_name_their_path() -> None:
    found = problems(raw(rest_budget={"shared": "yes", "label": "x"}))
    assert any(p.startswith("rest_budget.shared: expected true or false") for p in found), found
    assert any(p.startswith("rest_budget.label: unknown key") for p in found), found


def test_a_limit_below_one_request_is_refused() -> None:
    found = problems(raw(futures={"rest_weight_per_min": 20}))  # budget 16 < snapshot 20
    assert len(found) == 1, found
    assert found[0].startswith("exchanges.binance_futures.rest_weight_per_min: 20 leaves a "
                               "budget of 16"), found  # fmt: skip
    assert parse_config(raw(futures={"rest_weight_per_min": 25}), environ={})  # budget 20
    found = problems(raw(futures={"rest_weight_per_min": 0}))
    assert found == ["exchanges.binance_futures.rest_weight_per_min: 0 is outside 1..10000000"]


def test_spot_checks_its_own_snapshot_weight() -> None:
    spot = {"symbols": ["BTCUSDT"], "snapshot_limit": 5000, "max_levels_per_side": 10000}
    found = problems({"exchanges": {"binance_spot": {**spot, "rest_weight_per_min": 300}}})
    assert found[0].startswith("exchanges.binance_spot.rest_weight_per_min: 300 leaves a "
                               "budget of 240"), found  # fmt: skip
