"""Where the simulator's data comes from: a generated market, or a recorded capture."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Collection
from typing import Any, Protocol

import orjson

from marketdata.sim.capture import Capture
from marketdata.sim.market import SimMarket, StepFrames

INVALID_SYMBOL = orjson.dumps({"code": -1121, "msg": "Invalid symbol."})
# What `marketdata sim` lists by default: some of the exchange's most traded contracts.
COMMON_SYMBOLS = (
    "BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT", "ADAUSDT", "AVAXUSDT",
    "LINKUSDT", "DOTUSDT", "LTCUSDT", "TRXUSDT", "BCHUSDT", "NEARUSDT", "ATOMUSDT", "ETCUSDT",
    "FILUSDT", "APTUSDT", "ARBUSDT", "OPUSDT", "SUIUSDT", "PEPEUSDT", "WIFUSDT", "BTCUSDC",
)  # fmt: skip
QUEUE_LIMIT = 100_000


class Source(Protocol):
    def listed(self) -> list[str]:
        """The symbols GET /fapi/v1/exchangeInfo lists as trading."""

    def snapshot(self, symbol: str, limit: int) -> tuple[int, bytes]:
        """(HTTP status, body) of GET /fapi/v1/depth."""

    def agg_trades(self, symbol: str, from_id: int | None, limit: int) -> tuple[int, bytes]:
        """(HTTP status, body) of GET /fapi/v1/aggTrades."""

    def frames(self, streams: set[str]) -> AsyncIterator[bytes]:
        """Combined-stream frames for these streams, as they happen."""


class GeneratedSource:
    """One SimMarket per symbol, created on first use, stepped `rate` times a second.

    `symbols`: the instrument list; others get "Invalid symbol." from REST and nothing on
    their streams, as on the exchange. None: any symbol trades (the list shows the common
    ones and every market made so far)."""

    def __init__(
        self,
        rate: float,
        seed: int | None = None,
        symbols: Collection[str] | None = None,
        consecutive_ids: bool = False,  # spot's chain: U == previous u + 1
    ) -> None:
        self.rate = rate
        self.consecutive_ids = consecutive_ids
        self.seed = seed
        self.symbols = None if symbols is None else frozenset(s.upper() for s in symbols)
        self.markets: dict[str, SimMarket] = {}
        # lower-case stream name -> {queue: the name as the client spelled it}
        self._subscribers: dict[str, dict[asyncio.Queue[bytes], str]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.paused = False  # while True, markets stand still (tests compare final books)

    def market(self, symbol: str) -> SimMarket:
        market = self.markets.get(symbol)
        if market is None:
            market = self.markets[symbol] = SimMarket(
                symbol, self.seed, _now_ms(), self.consecutive_ids
            )
            self._tasks[symbol] = asyncio.get_running_loop().create_task(
                run_steps(market, self.rate, lambda: self.paused, self._stepped)
            )
        return market

    def listed(self) -> list[str]:
        if self.symbols is not None:
            return sorted(self.symbols)
        return sorted({*COMMON_SYMBOLS, *self.markets})

    def trades(self, symbol: str) -> bool:
        return self.symbols is None or symbol.upper() in self.symbols

    def snapshot(self, symbol: str, limit: int) -> tuple[int, bytes]:
        if not self.trades(symbol):
            return 400, INVALID_SYMBOL
        return 200, orjson.dumps(self.market(symbol).snapshot(limit))

    def agg_trades(self, symbol: str, from_id: int | None, limit: int) -> tuple[int, bytes]:
        if not self.trades(symbol):
            return 400, INVALID_SYMBOL
        return 200, orjson.dumps(self.market(symbol).agg_trades(from_id, limit))

    async def frames(self, streams: set[str]) -> AsyncIterator[bytes]:
        queue: asyncio.Queue[bytes] = asyncio.Queue(QUEUE_LIMIT)
        streams = {s for s in streams if self.trades(s.split("@", 1)[0])}
        for stream in streams:
            self.market(stream.split("@", 1)[0].upper())
            self._subscribers.setdefault(stream.lower(), {})[queue] = stream
        try:
            while True:
                yield await queue.get()
        finally:
            for stream in streams:
                self._subscribers.get(stream.lower(), {}).pop(queue, None)

    async def close(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        for task in self._tasks.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _stepped(self, market: SimMarket, frames: StepFrames) -> None:
        name = market.symbol.lower()
        self._publish(f"{name}@depth", frames.depth)
        if frames.book_ticker is not None:
            self._publish(f"{name}@bookTicker", frames.book_ticker)
        if frames.trade is not None:
            self._publish(f"{name}@aggTrade", frames.trade)

    def _publish(self, stream: str, data: dict[str, Any]) -> None:
        """Send to subscribers of `stream` or of a variant of it (`btcusdt@depth@100ms`)."""
        stream = stream.lower()
        frames: dict[str, bytes] = {}
        for key, queues in self._subscribers.items():
            if not queues or not (key == stream or key.startswith(stream + "@")):
                continue
            for queue, name in queues.items():
                frame = frames.get(name)
                if frame is None:
                    frame = frames[name] = orjson.dumps({"stream": name, "data": data})
                if not queue.full():  # a consumer this slow sees a gap, as it would live
                    queue.put_nowait(frame)


class ReplaySource:
    """Serves a capture: each connection gets its streams' frames from the start, paced
    by the recorded receive times divided by `speed` (0 = as fast as possible)."""

    def __init__(self, capture: Capture, speed: float = 1.0) -> None:
        self.capture = capture
        self.speed = speed
        self._trades = _captured_trades(capture)

    def listed(self) -> list[str]:
        return sorted(self.capture.snapshots)

    def snapshot(self, symbol: str, limit: int) -> tuple[int, bytes]:
        rest = self.capture.snapshots.get(symbol)
        return (200, rest.raw.encode()) if rest else (400, INVALID_SYMBOL)

    def agg_trades(self, symbol: str, from_id: int | None, limit: int) -> tuple[int, bytes]:
        """The capture's trades of `symbol` (all of them: every connection replays it whole)."""
        trades = self._trades.get(symbol)
        if trades is None:
            return 400, INVALID_SYMBOL
        if from_id is None:
            return 200, orjson.dumps(trades[-limit:])
        return 200, orjson.dumps([t for t in trades if t["a"] >= from_id][:limit])

    async def frames(self, streams: set[str]) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        wanted = {s.lower() for s in streams}
        frames = [f for f in self.capture.frames if f.stream.lower() in wanted]
        if not frames:
            return
        t0, started = self.capture.records[0].t, loop.time()
        for frame in frames:
            if self.speed > 0:
                wait = (frame.t - t0) / self.speed - (loop.time() - started)
                if wait > 0:
                    await asyncio.sleep(wait)
            yield frame.raw.encode()


def _captured_trades(capture: Capture) -> dict[str, list[dict[str, Any]]]:
    """symbol -> its aggTrades in id order, as GET /fapi/v1/aggTrades renders them."""
    trades: dict[str, dict[int, dict[str, Any]]] = {}
    for frame in capture.frames:
        if "@aggtrade" not in frame.stream.lower():
            continue
        data = orjson.loads(frame.raw).get("data", {})
        if isinstance(data, dict) and data.get("e") == "aggTrade":
            rendered = {k: data.get(k) for k in ("a", "p", "q", "f", "l", "T", "m")}
            trades.setdefault(str(data.get("s")), {})[data["a"]] = rendered
    return {s: [by_id[i] for i in sorted(by_id)] for s, by_id in trades.items()}


async def run_steps(
    market: SimMarket,
    rate: float,
    paused: Callable[[], bool],
    on_step: Callable[[SimMarket, StepFrames], None],
) -> None:
    """Step `market` `rate` times a second (catching up after a slow tick), handing each
    step to `on_step`; while `paused()`, the market stands still and the steps are lost."""
    loop = asyncio.get_running_loop()
    started, done = loop.time(), 0
    while True:
        due = int((loop.time() - started) * rate) - done
        if paused():
            done += max(due, 0)
            due = 0
        for _ in range(min(due, 10_000)):
            on_step(market, market.step(_now_ms()))
        done += max(due, 0)
        await asyncio.sleep(max(0.001, min(0.1, 1 / rate)))


def _now_ms() -> int:
    return int(time.time() * 1000)
