"""What every venue's config section has, and the checks venues share.

Each venue's section is a frozen dataclass derived from ExchangeConfig, kept with the venue
(its defaults are the venue's URLs and limits). `check` adds the venue's own rules; every
problem names its key path (`exchanges.kraken.depth: ...`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

SYMBOL_PATTERN = re.compile(r"^[A-Z0-9][A-Z0-9_\-/]{1,31}$")
_USERINFO_PASSWORD = re.compile(r"(//[^/@:]*):[^/@]*@")


@dataclass(frozen=True)
class ExchangeConfig:
    """The keys every exchange section has."""

    symbols: tuple[str, ...] = ()
    ws_url: str = ""
    rest_url: str = ""

    def __post_init__(self) -> None:
        upper = tuple(s.upper() if isinstance(s, str) else s for s in self.symbols)
        object.__setattr__(self, "symbols", upper)

    def check(self, path: str, book_depth: int, problems: list[str]) -> None:
        """Append what is wrong with this section (`path`: `exchanges.<name>`)."""
        check_url(self.ws_url, f"{path}.ws_url", ("ws", "wss"), problems)
        check_url(self.rest_url, f"{path}.rest_url", ("http", "https"), problems)
        if not self.symbols:
            problems.append(f"{path}.symbols: list at least one symbol")
        seen: set[str] = set()
        for i, symbol in enumerate(self.symbols):
            if not symbol or not SYMBOL_PATTERN.match(symbol):
                problems.append(f"{path}.symbols[{i}]: {symbol!r} is not a symbol like BTCUSDT")
            elif symbol in seen:
                problems.append(f"{path}.symbols[{i}]: duplicate symbol {symbol!r}")
            seen.add(symbol)


def mask_url(url: str) -> str:
    """The URL with any password replaced by ***, even when the URL is malformed."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return _USERINFO_PASSWORD.sub(r"\1:***@", url)
    if password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[-1]}"))


def check_url(url: str, path: str, schemes: tuple[str, ...], problems: list[str]) -> None:
    try:
        parts = urlsplit(url)
        parts.hostname  # noqa: B018 - parses the netloc: a bracket left open raises here
    except ValueError as e:
        problems.append(f"{path}: {short(mask_url(url))} is not a valid URL ({e})")
        return
    if parts.scheme not in schemes:
        allowed = ", ".join(f"{s}://" for s in schemes)
        problems.append(f"{path}: {short(mask_url(url))} must start with {allowed}")
    elif parts.scheme != "unix" and not parts.hostname:
        problems.append(f"{path}: {short(mask_url(url))} has no host")
    else:
        _check_port(parts.netloc, path, problems)


def _check_port(netloc: str, path: str, problems: list[str]) -> None:
    """The port of the last host in netloc (libpq and MongoDB allow `h1:p1,h2:p2`)."""
    hostport = netloc.rpartition("@")[2].rpartition(",")[2]
    host, colon, port = hostport.rpartition(":")
    if not colon or host.startswith("[") and not host.endswith("]"):
        return  # no port, or a colon inside a bracketed IPv6 address
    if not port:
        return
    if not port.isdigit():
        problems.append(f"{path}: port {short(port)} is not a number")
    elif not 1 <= int(port) <= 65535:
        problems.append(f"{path}: port {int(port)} is outside 1..65535")


def check_range(value: float, path: str, low: float, high: float, problems: list[str]) -> None:
    if not low <= value <= high:
        problems.append(f"{path}: {value} is outside {low}..{high}")


def short(value: Any, limit: int = 60) -> str:
    """repr(value), cut to `limit` characters (a wrong value may be a whole document)."""
    if isinstance(value, list | dict) and len(value) > limit:
        return f"<{kind(value)} of {len(value)}>"
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", type(None): "nothing"}.get(
        type(value), type(value).__name__
    )
