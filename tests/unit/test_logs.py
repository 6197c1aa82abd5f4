"""describe() and the one-line filter for aiohttp's bad-request errors."""

from __future__ import annotations

import logging
import sys

import pytest
from aiohttp.http_exceptions import LineTooLong

from marketdata.logs import MAX_DESCRIPTION, BadRequestFilter, describe


def test_describe_names_the_type_when_the_text_is_empty() -> None:
    assert describe(TimeoutError()) == "TimeoutError"
    assert describe(ConnectionResetError()) == "ConnectionResetError"


def test_describe_is_one_bounded_line() -> None:
    assert describe(ValueError("bad\n  value")) == "ValueError: bad value"
    long = describe(OSError("x" * 100_000))
    assert long.startswith("OSError: xxx")
    assert len(long) == len("OSError: ") + MAX_DESCRIPTION


def record_for(error: BaseException) -> logging.LogRecord:
    try:
        raise error
    except BaseException:
        exc_info = sys.exc_info()
    return logging.LogRecord(
        "aiohttp.server", logging.ERROR, __file__, 1, "Error handling request from %s",
        ("127.0.0.1",), exc_info,
    )  # fmt: skip


def test_a_bad_request_becomes_one_warning_line() -> None:
    record = record_for(LineTooLong(b"a" * 100_000, 8190))
    assert BadRequestFilter().filter(record)
    line = logging.Formatter("%(levelname)s %(message)s").format(record)
    assert "\n" not in line
    assert line.startswith("WARNING bad HTTP request from 127.0.0.1: LineTooLong: ")
    assert len(line) < 300


def test_a_handlers_own_exception_keeps_its_traceback() -> None:
    record = record_for(KeyError("bug"))
    assert BadRequestFilter().filter(record)
    assert record.levelno == logging.ERROR
    assert "Traceback" in logging.Formatter().format(record)


def test_a_start_failure_without_text_names_its_type(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from marketdata.cli import _serve
    from marketdata.config import parse_config

    class TimesOut:
        def stop(self) -> None: ...

        async def run(self) -> None:
            raise TimeoutError

    config = parse_config({"exchanges": {"binance_futures": {"symbols": ["BTCUSDT"]}}}, {})
    args = argparse.Namespace(command="run", log_level=None, log_format=None)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        assert _serve(TimesOut, config, args) == 1
    finally:
        root.handlers[:], root.level = handlers, level
    assert capsys.readouterr().err.splitlines()[-1] == "marketdata run: TimeoutError"
