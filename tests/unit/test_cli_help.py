"""Help texts: every command listed, every option's default shown; the example consumer."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from marketdata.cli import _parser

COMMANDS = ("run", "persist", "check-config", "sim")


def _help(*argv: str, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit):
        _parser().parse_args([*argv, "--help"])
    return capsys.readouterr().out


def test_top_level_help_lists_every_command(capsys):
    text = _help(capsys=capsys)
    for command in COMMANDS:
        assert f"    {command}" in text, command


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_with_a_default_shows_it(command, capsys):
    text = " ".join(_help(command, capsys=capsys).split())  # unwrap the columns
    parser = _parser()
    sub = parser._subparsers._group_actions[0].choices[command]  # type: ignore[union-attr]
    for action in sub._actions:
        if action.option_strings and action.default not in (None, False, "==SUPPRESS=="):
            assert f"(default: {action.default})" in text, (command, action.dest)
    assert "(default: None)" not in text


def _consumer():
    path = Path(__file__).parents[2] / "examples" / "consumer.py"
    spec = importlib.util.spec_from_file_location("consumer", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_consumer_shows_exact_spread_and_mid_and_names_channels_as_the_service_does():
    consumer = _consumer()
    book = {
        "exchange": "binance_futures", "symbol": "BTCUSDT", "last_update_id": 7,
        "exchange_ts": 1_700_000_000_000,
        "bids": [["59999.9", "1.0"]], "asks": [["60000.1", "2.0"]],
    }  # fmt: skip
    assert "spread 0.2  mid 60000.0" in consumer.render_book(book, 5)
    assert consumer.channels("binance_futures", "BTCUSDT") == (
        "orderbook:BTCUSDT",
        "trades:BTCUSDT",
    )
    assert consumer.channels("kraken", "XBT/USD") == (
        "orderbook:kraken:XBT/USD", "trades:kraken:XBT/USD",
    )  # fmt: skip


def test_sim_help_names_the_venues_and_the_kraken_faults(capsys):
    text = " ".join(_help("sim", capsys=capsys).split())
    for words in (
        "--venues A,B", "binance_futures, binance_spot, kraken", "/kraken/v2",
        "--symbols [VENUE=]A,B", "--checksum-corrupt-every N", "--reject-symbols A,B",
        "--reject-subscribes N",
    ):  # fmt: skip
        assert words in text, words
    args = _parser().parse_args(
        ["sim", "--venues", "kraken", "--symbols", "kraken=BTC/USD", "--reject-symbols",
         "eth/usd", "--checksum-corrupt-every", "7", "--reject-subscribes", "2"]
    )  # fmt: skip
    from marketdata.cli import _scenario

    scenario = _scenario(args)
    assert scenario.reject_symbols == frozenset({"ETH/USD"})
    assert (scenario.checksum_corrupt_every, scenario.reject_subscribes) == (7, 2)
    assert args.symbols == ["kraken=BTC/USD"]


def test_sim_help_names_okx_and_its_upgrade_notice(capsys):
    text = " ".join(_help("sim", capsys=capsys).split())
    for words in (
        "kraken, okx", "/okx/ws/v5/public", "--upgrade-notice-after S", "--upgrade-close S",
        "--okx-zero-checksums",
    ):  # fmt: skip
        assert words in text, words
    args = _parser().parse_args(
        ["sim", "--venues", "okx", "--upgrade-notice-after", "60", "--upgrade-close", "5",
         "--okx-zero-checksums", "--reject-symbols", "eth-usdt"]
    )  # fmt: skip
    from marketdata.cli import _scenario

    scenario = _scenario(args)
    assert (scenario.upgrade_notice_after_s, scenario.upgrade_close_s) == (60.0, 5.0)
    assert scenario.reject_symbols == frozenset({"ETH-USDT"})
    assert args.okx_zero_checksums


def test_sim_help_names_bybit_and_its_restart_knob(capsys):
    text = " ".join(_help("sim", capsys=capsys).split())
    for words in ("coinbase, bybit", "/bybit/v5/public/linear", "--restart-every N", "u=1"):
        assert words in text, words
    args = _parser().parse_args(
        ["sim", "--venues", "bybit", "--reject-symbols", "ethusdt", "--restart-every", "50"]
    )
    from marketdata.cli import _scenario

    scenario = _scenario(args)
    assert (scenario.reject_symbols, scenario.restart_every) == (frozenset({"ETHUSDT"}), 50)
