"""BybitFeed over a real WebSocket: a local server answers its subscribes and pings the way
Bybit does and replays the recorded linear capture; the books sync, every trade arrives
once, and a delta the server leaves out resyncs that one symbol over the socket."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from aiohttp import web

from marketdata.config import ReconnectConfig
from marketdata.events import Trade
from marketdata.metrics import Metrics
from marketdata.state import AnyState
from marketdata.venue import FeedContext
from marketdata.venues.bybit.config import BybitConfig
from marketdata.venues.bybit.feed import BybitFeed, feeds_for
from tests.bybit_v5 import DEPTH, SERVICE_TOPICS, SYMBOLS, Capture, load

SYMBOL = "SOLUSDT"


class ReplayServer:
    """One Bybit public stream: replies to every request, then the capture's frames once
    every topic of the capture is subscribed; a resubscribed book gets its snapshot."""

    def __init__(self, frames: list[bytes], snapshots: dict[str, bytes]) -> None:
        self.frames = frames
        self.snapshots = snapshots
        self.requests: list[dict[str, Any]] = []
        self.subscribed: set[str] = set()
        self.replayed = False
        self.pinged = asyncio.Event()  # two pings came, each answered

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            sent = json.loads(message.data)
            self.requests.append(sent)
            op = sent["op"]
            if op == "ping":
                reply = {"success": True, "ret_msg": "pong", "op": "ping"}
                if sum(r["op"] == "ping" for r in self.requests) == 2:
                    self.pinged.set()
            else:
                reply = {"success": True, "ret_msg": "", "op": op}
            await ws.send_str(json.dumps({**reply, "conn_id": "c", "req_id": sent["req_id"]}))
            if op == "subscribe":
                await self._subscribed(ws, sent["args"])
            elif op == "unsubscribe":
                self.subscribed.difference_update(sent["args"])
        return ws

    async def _subscribed(self, ws: web.WebSocketResponse, topics: list[str]) -> None:
        if self.replayed:
            for topic in topics:
                await ws.send_bytes(self.snapshots[topic.rsplit(".", 1)[1]])
        self.subscribed.update(topics)
        if not self.replayed and len(self.subscribed) == len(SYMBOLS) * len(SERVICE_TOPICS):
            self.replayed = True
            for frame in self.frames:
                await ws.send_str(frame.decode())


class Recorder:
    """The publisher's side; `until` resolves once `done` holds."""

    def __init__(self) -> None:
        self.trades: list[Trade] = []
        self.states: list[AnyState] = []
        self.done: Callable[[Recorder], bool] = lambda r: False
        self.event = asyncio.Event()

    def register(self, state: AnyState) -> None:
        pass

    def book_changed(self, state: AnyState) -> None:
        self._check()

    def trade(self, state: AnyState, trade: Trade) -> None:
        self.trades.append(trade)
        self._check()

    def _check(self) -> None:
        if self.done(self):
            self.event.set()


@asynccontextmanager
async def running(server: ReplayServer, recorder: Recorder) -> AsyncIterator[BybitFeed]:
    app = web.Application()
    app.router.add_get("/v5/public/linear", server.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1, handler_cancellation=True)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        async with aiohttp.ClientSession() as session:
            async with _feed(session, port, recorder) as feed:
                yield feed
    finally:
        await runner.cleanup()


@asynccontextmanager
async def _feed(
    session: aiohttp.ClientSession, port: int, recorder: Recorder
) -> AsyncIterator[BybitFeed]:
    config = BybitConfig(
        symbols=SYMBOLS, ws_url=f"ws://127.0.0.1:{port}/v5/public/linear",
        symbols_per_connection=len(SYMBOLS), ping_interval_s=0.05,
    )  # fmt: skip
    context = FeedContext(
        recorder,  # type: ignore[arg-type]
        session,
        ReconnectConfig(initial_delay_s=0.2, max_delay_s=1.0),
        Metrics(),
        30.0,
    )
    (feed,) = feeds_for(config, context)
    tasks = [asyncio.create_task(task) for task in feed.tasks()]
    try:
        yield feed
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await feed.close()


def _frames(capture: Capture) -> list[bytes]:
    return [f for f in capture.topic_frames(*SERVICE_TOPICS) if b'"topic"' in f]


def _snapshots(frames: list[bytes]) -> dict[str, bytes]:
    out = {}
    for frame in frames:
        message = json.loads(frame)
        if message.get("type") == "snapshot" and message["topic"].startswith("orderbook."):
            out[message["data"]["s"]] = frame
    return out


def _last_u(frames: list[bytes]) -> dict[str, int]:
    last = {}
    for frame in frames:
        message = json.loads(frame)
        if message["topic"].startswith("orderbook."):
            last[message["data"]["s"]] = message["data"]["u"]
    return last


def _count(feed: BybitFeed, name: str, symbol: str) -> float:
    value = feed._metrics.registry.get_sample_value(name, {"exchange": "bybit", "symbol": symbol})
    return 0.0 if value is None else value


async def test_the_capture_over_a_socket_syncs_every_book_and_publishes_each_trade_once() -> None:
    capture = load()
    frames = _frames(capture)
    server = ReplayServer(frames, _snapshots(frames))
    recorder = Recorder()
    last_u = _last_u(frames)
    async with running(server, recorder) as feed:
        recorder.done = lambda r: (
            len(r.trades) == len(capture.trade_ids)
            and all(s.sync.synced and s.sync.last_id == last_u[s.symbol] for s in feed.states)
        )
        async with asyncio.timeout(10.0):
            await recorder.event.wait()
            await server.pinged.wait()
        assert feed.readiness(0.0, 1e9) == {}
    assert [(t.symbol, t.trade_id) for t in recorder.trades] == capture.trade_ids
    subscribes = [r for r in server.requests if r["op"] == "subscribe"]
    assert [r["args"] for r in subscribes] == [
        [t for s in SYMBOLS for t in (f"orderbook.{DEPTH}.{s}", f"publicTrade.{s}")]
    ]
    assert all(_count(feed, "sequence_gaps_total", s) == 0 for s in SYMBOLS)


async def test_a_delta_left_out_resubscribes_that_symbol_over_the_socket() -> None:
    capture = load()
    frames = _frames(capture)
    deltas = [i for i, f in enumerate(frames) if b'"delta"' in f and SYMBOL.encode() in f]
    missing = frames[: deltas[5]] + frames[deltas[5] + 1 :]
    server = ReplayServer(missing, _snapshots(frames))
    recorder = Recorder()
    async with running(server, recorder) as feed:
        resubscribed = [f"orderbook.{DEPTH}.{SYMBOL}"]
        recorder.done = lambda r: (
            len(r.trades) == len(capture.trade_ids)
            and {"op": "subscribe", "args": resubscribed} in _ops(server)
            and all(s.sync.synced for s in feed.states)
        )
        async with asyncio.timeout(10.0):
            await recorder.event.wait()
        assert feed.readiness(0.0, 1e9) == {}
    assert [r for r in _ops(server) if r["op"] != "ping"][1:] == [
        {"op": "unsubscribe", "args": resubscribed},
        {"op": "subscribe", "args": resubscribed},
    ]
    assert {s: _count(feed, "resyncs_total", s) for s in SYMBOLS} == {
        s: float(s == SYMBOL) for s in SYMBOLS
    }
    assert len(recorder.trades) == len(set(t.trade_id for t in recorder.trades)) == 327


def _ops(server: ReplayServer) -> list[dict[str, Any]]:
    return [{"op": r["op"], "args": r.get("args")} for r in server.requests]
