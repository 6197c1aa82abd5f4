"""One kind of REST request of one symbol (a book snapshot, a page of past trades), made the
one way every REST request is: through the exchange's RestGate (weight, spacing, 429/418),
with a timeout, the body refused as soon as it passes its size limit, each reply counted by
status, and failures told as one Outage (a line when they start, one when they end).
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from typing import Protocol, TypeVar

import aiohttp

from marketdata.capped_read import BodyTooLarge, read_capped
from marketdata.logs import describe
from marketdata.outage import Outage
from marketdata.rest_gate import RestGate
from marketdata.venues.base import MalformedMessage

REQUEST_TIMEOUT_S = 10.0

T = TypeVar("T")


class Count(Protocol):
    def inc(self, amount: float = 1.0) -> None: ...


class Labelled(Protocol):
    def labels(self, *values: str) -> Count: ...


class Failure(enum.Enum):
    FAILED = "failed"  # no reply, an error status, a body too large or malformed
    LIMITED = "limited"  # 429 or 418: the gate now holds every request for the time asked
    UNWANTED = "unwanted"  # no longer wanted once the gate let it go: never sent


class RestFetch:
    def __init__(
        self,
        key: str,  # "binance_futures:BTCUSDT"
        kind: str,  # "snapshot"
        session: aiohttp.ClientSession,
        gate: RestGate,
        requests: Labelled,  # by HTTP status, or "error" when there was no reply
        errors: Labelled,  # malformed replies, by reason
        logger: logging.Logger,
        max_bytes: int,
        too_large: Count | None = None,
    ) -> None:
        self.outage = Outage(f"{key}: {kind}", logger)
        self._kind = kind
        self._session = session
        self._gate = gate
        self._requests = requests
        self._errors = errors
        self._max_bytes = max_bytes
        self._too_large = too_large

    async def get(
        self,
        url: str,
        weight: int,
        parse: Callable[[bytes, float], T],  # (body, receive time) -> the value
        wanted: Callable[[], bool] | None = None,  # asked again once the gate lets it go
    ) -> T | Failure:
        await self._gate.acquire(weight)
        if wanted is not None and not wanted():
            return Failure.UNWANTED
        reply = await self._request(url)
        if isinstance(reply, Failure):
            return reply
        status, body = reply
        if status != 200:
            self.outage.fail(f"HTTP {status} {body[:200].decode(errors='replace')}")
            return Failure.LIMITED if status in (418, 429) else Failure.FAILED
        try:
            value = parse(body, time.time())
        except MalformedMessage as e:
            self._errors.labels(e.reason).inc()
            self.outage.fail(f"malformed {self._kind} ({e})")
            return Failure.FAILED
        self.outage.ok()
        return value

    async def _request(self, url: str) -> tuple[int, bytes] | Failure:
        """(status, body), the status counted and told to the gate; or FAILED."""
        try:
            timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
            async with self._session.get(url, timeout=timeout) as response:
                status, headers = response.status, response.headers
                body = await read_capped(response, self._max_bytes)
        except BodyTooLarge as e:
            self._requests.labels(str(status)).inc()
            self._gate.record(status, headers)
            if self._too_large is not None:
                self._too_large.inc()
            self.outage.fail(f"refused: {e}")
            return Failure.FAILED
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            self._requests.labels("error").inc()
            self.outage.fail(f"request failed: {describe(e)}")
            return Failure.FAILED
        self._requests.labels(str(status)).inc()
        self._gate.record(status, headers)
        return status, body
