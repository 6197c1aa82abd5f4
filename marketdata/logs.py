"""Logging set-up: human text or one JSON object per line; exceptions as one line."""

from __future__ import annotations

import logging
import sys
import time

import orjson
from aiohttp.http_exceptions import HttpProcessingError

MAX_DESCRIPTION = 200


def describe(error: BaseException) -> str:
    """`TypeName: text` on one line, cut to MAX_DESCRIPTION; `TypeName` when the text is
    empty (TimeoutError() and many connection errors say nothing by themselves)."""
    text = " ".join(str(error).split())
    if len(text) > MAX_DESCRIPTION:
        text = text[: MAX_DESCRIPTION - 3] + "..."
    name = type(error).__name__
    return f"{name}: {text}" if text else name


class BadRequestFilter(logging.Filter):
    """aiohttp.server logs a malformed request (an overlong URL or header, bad syntax) at
    ERROR with a traceback and the client's bytes: make it one WARNING line. A client's
    bad input is not our error; a handler's own exception keeps its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            record.msg = "bad HTTP request from %s: %s"
            record.args = (remote, describe(error))
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        formatter: logging.Formatter = JsonFormatter()
        formatter.converter = time.gmtime
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, BadRequestFilter) for f in server.filters):
        server.addFilter(BadRequestFilter())
