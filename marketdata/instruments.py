"""Start-up check: every configured symbol is one its venue lists as trading.

A typo (`BTCUSD` for `BTCUSDT`) would otherwise run forever as a feed that never syncs.
When the list cannot be fetched (venue unreachable, unexpected reply) the service warns
once and goes on: the feeds report their own state on /ready.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Sequence

import aiohttp

from marketdata.logs import describe
from marketdata.venues.base import ExchangeAdapter, MalformedMessage

log = logging.getLogger(__name__)

TRADING = "TRADING"
FETCH_TIMEOUT_S = 10.0


async def symbol_problems(
    session: aiohttp.ClientSession, adapter: ExchangeAdapter, symbols: Sequence[str]
) -> list[str]:
    """One line per configured symbol the venue does not list, naming its key path. A symbol
    it lists but does not trade now (halted, settling, delivering) is a warning: it may trade
    again, and the other symbols must not stay down for it; /ready shows it not ready."""
    listed = await _fetch(session, adapter)
    if listed is None:
        return []
    trading = [s for s, status in listed.items() if status == TRADING]
    problems = []
    for i, symbol in enumerate(symbols):
        status = listed.get(symbol)
        if status == TRADING:
            continue
        where = f"exchanges.{adapter.name}.symbols[{i}]: {symbol!r}"
        if status is not None:
            log.warning("%s is %s on %s, not %s: it will not be ready while it does not "
                        "trade", where, status, adapter.name, TRADING)  # fmt: skip
            continue
        close = difflib.get_close_matches(symbol, trading, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        problems.append(f"{where} is not a trading symbol on {adapter.name}{hint}")
    return problems


async def _fetch(session: aiohttp.ClientSession, adapter: ExchangeAdapter) -> dict[str, str] | None:
    url = adapter.instruments_url()
    try:
        timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT_S)
        async with session.get(url, timeout=timeout) as response:
            body = await response.read()
            if response.status != 200:
                raise aiohttp.ClientError(f"HTTP {response.status} {body[:200]!r}")
        return adapter.parse_instruments(body)
    except (aiohttp.ClientError, OSError, TimeoutError, MalformedMessage) as e:
        log.warning(
            "%s: cannot check the configured symbols against %s (%s); starting anyway",
            adapter.name, url, describe(e),
        )  # fmt: skip
        return None
