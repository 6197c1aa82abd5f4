"""The simulator in Kraken spot WebSocket v2's wire format (`wss://ws.kraken.com/v2`).

WS  /kraken/v2   on connect: {"channel":"status","type":"update","data":[{"system":"online",
                 "api_version":"v2","connection_id":...,"version":"2.0.0"}]}
    {"method":"subscribe","params":{"channel":"book","symbol":["BTC/USD"],"depth":10,
     "snapshot":true},"req_id":1}        one reply per symbol, then the book snapshot and
                                         its updates, each with its checksum
    channels: instrument (no symbol: every pair's precisions), book (depth 10, 25, 100,
              500 or 1000), trade (snapshot: the last 50), ticker (event_trigger
              "trades" or "bbo")
    {"method":"unsubscribe","params":{...}}  likewise
    {"method":"ping","req_id":N}        -> {"method":"pong","req_id":N,"time_in","time_out"}
    {"channel":"heartbeat"} about every second while anything is subscribed

All frames of a connection (replies too) go out in order through one queue and the
scenario's faults (sim/scenarios.py): gap/duplicate/reorder act on book updates;
checksum_corrupt_every, reject_symbols and reject_subscribes (which counts every subscribe
request, `instrument` ones too) are Kraken's own. A silence
is per symbol: after every `silence_every` frames of a symbol, that symbol alone pauses
and then resumes with one update carrying what changed meanwhile. Replay of
a capture is not served in this dialect: the markets are generated.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from marketdata.sim import kraken_frames
from marketdata.sim.kraken_book import DEPTHS
from marketdata.sim.kraken_market import KrakenSource, Pair, now_rfc3339
from marketdata.sim.kraken_subscriptions import (
    BookSubscription,
    Subscription,
    TickerSubscription,
    TradeSubscription,
)
from marketdata.sim.scenarios import (
    Disconnect,
    Scenario,
    Wire,
    faults,
    silenced,
    start_silence,
)

PATH = "/kraken/v2"
PATHS = (PATH,)
SOURCE = web.AppKey("kraken_source", KrakenSource)
SCENARIO = web.AppKey("kraken_scenario", Scenario)
HEARTBEAT_S = web.AppKey("kraken_heartbeat_s", float)
QUEUE_LIMIT = 100_000  # frames; a client this far behind misses updates (its checksum fails)
CHANNELS = ("instrument", "book", "trade", "ticker")
TRIGGERS = ("trades", "bbo")
REJECTED = "EService:Unavailable"  # what reject_symbols / reject_subscribes answer
WIRE = Wire(
    is_diff=lambda frame: frame.startswith(b'{"channel":"book","type":"update"'),
    malformed=(b'{"channel":"book","type":"update","data":[{"symbol":', b"\xff\xfe x", b"[]"),
    oversize_head=b'{"channel":"x","data":"',
)


def create_kraken_app(
    source: KrakenSource, scenario: Scenario | None = None, heartbeat_s: float = 1.0
) -> web.Application:
    app = web.Application()
    create_kraken_routes(app, source, scenario, heartbeat_s)
    return app


def create_kraken_routes(
    app: web.Application,
    source: KrakenSource,
    scenario: Scenario | None = None,
    heartbeat_s: float = 1.0,
) -> None:
    app[SOURCE] = source
    app[SCENARIO] = scenario or Scenario()
    app[HEARTBEAT_S] = heartbeat_s
    app.router.add_get(PATH, kraken_stream)


async def kraken_stream(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(autoping=True)
    await ws.prepare(request)
    connection = Connection(request.app[SOURCE], request.app[SCENARIO])
    await ws.send_frame(kraken_frames.status(connection.id), WSMsgType.TEXT)
    tasks = [
        asyncio.create_task(_send(ws, connection)),
        asyncio.create_task(_heartbeats(connection, request.app[HEARTBEAT_S])),
    ]
    try:
        async for message in ws:
            if message.type is WSMsgType.TEXT:
                connection.handle(message.data)
    finally:
        connection.close()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await task
    return ws


async def _send(ws: web.WebSocketResponse, connection: Connection) -> None:
    scenario = connection.scenario
    frames = faults(
        scenario,
        connection.frames(),
        WIRE,
        symbols=lambda: (),  # silences are started per symbol by Connection.queue
        cut=connection.cut,
        wait=False,
    )
    try:
        async for frame in frames:
            if ws.closed:
                return
            await ws.send_frame(frame, WSMsgType.TEXT)
    except Disconnect:
        await ws.close(code=1001, message=b"simulated disconnect")


async def _heartbeats(connection: Connection, every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        if connection.subscriptions:
            connection.queue(None, kraken_frames.HEARTBEAT)


class Connection:
    """One client's subscriptions and the frames queued for it."""

    def __init__(self, source: KrakenSource, scenario: Scenario) -> None:
        self.source = source
        self.scenario = scenario
        self.id = random.getrandbits(63)
        self.subscriptions: dict[tuple[str, str], Subscription | None] = {}  # (channel, symbol)
        self._queue: asyncio.Queue[tuple[Subscription | None, bytes]] = asyncio.Queue(QUEUE_LIMIT)
        self._subscribes = 0  # subscribe requests so far
        self._updates = 0  # book updates so far
        self._sent: dict[str, int] = {}  # symbol -> its frames so far

    def queue(self, subscription: Subscription | None, frame: bytes) -> None:
        if subscription is not None and self.scenario.silence_ms:
            self._count(subscription.symbol)
        if not self._queue.full():  # else the client misses it, as a slow one would live
            self._queue.put_nowait((subscription, frame))

    def _count(self, symbol: str) -> None:
        """After every `silence_every` frames of a symbol, that symbol goes silent (its
        subscriptions on every connection hold back, then send what they missed)."""
        sent = self._sent[symbol] = self._sent.get(symbol, 0) + 1
        if sent % self.scenario.silence_every == 0 and silenced(self.scenario, (symbol,)):
            start_silence(self.scenario, symbol)

    def corrupts_next_update(self) -> bool:
        self._updates += 1
        every = self.scenario.checksum_corrupt_every
        return self.scenario.enabled and every > 0 and self._updates % every == 0

    async def frames(self) -> AsyncIterator[bytes]:
        """The queued frames, less those of subscriptions ended since they were queued."""
        while True:
            subscription, frame = await self._queue.get()
            if subscription is None or subscription.active:
                yield frame

    def symbols(self) -> set[str]:
        return {symbol for _, symbol in self.subscriptions if symbol}

    def cut(self) -> bool:
        """Whether disconnect_every applies to this connection as it stands."""
        kinds = {k.lower() for k in self.scenario.disconnect_streams}
        return not kinds or any(k in channel for channel, _ in self.subscriptions for k in kinds)

    def close(self) -> None:
        for subscription in self.subscriptions.values():
            if subscription is not None:
                subscription.stop()
        self.subscriptions.clear()

    def handle(self, text: str) -> None:
        """Answer one request (replies are queued in order with the data)."""
        time_in = now_rfc3339()
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError:
            message = None
        if not isinstance(message, dict):
            self.queue(None, kraken_frames.refusal("error", "Malformed request", None, time_in))
            return
        req_id = message.get("req_id")
        request = Request(str(message.get("method")), req_id if type(req_id) is int else None,
                          time_in)  # fmt: skip
        if request.method == "ping":
            self.queue(None, kraken_frames.pong(request.req_id, time_in))
        elif request.method in ("subscribe", "unsubscribe"):
            self._subscription(request, message.get("params"))
        else:
            self.refuse(request, f"Method not found {request.method}")

    def reply(self, request: Request, result: dict[str, Any]) -> None:
        frame = kraken_frames.ack(request.method, result, request.req_id, request.time_in)
        self.queue(None, frame)

    def refuse(self, request: Request, error: str, symbol: str | None = None) -> None:
        frame = kraken_frames.refusal(
            request.method, error, request.req_id, request.time_in, symbol
        )
        self.queue(None, frame)

    def _subscription(self, request: Request, raw: Any) -> None:
        params = Params.read(raw)
        if isinstance(params, str):
            self.refuse(request, f"EGeneral:Invalid arguments:{params}")
            return
        rejected = False
        if request.method == "subscribe":
            self._subscribes += 1
            rejected = self.scenario.enabled and self._subscribes <= self.scenario.reject_subscribes
        if params.channel == "instrument":
            if rejected:
                self.refuse(request, REJECTED)
            else:
                self._instrument(request, params.snapshot)
            return
        for symbol in params.symbols:
            pair = self.source.pairs.get(symbol) if isinstance(symbol, str) else None
            if pair is None:
                self.refuse(request, f"Currency pair not supported {symbol}", str(symbol))
            elif rejected or (self.scenario.enabled and symbol in self.scenario.reject_symbols):
                self.refuse(request, REJECTED, symbol)
            elif request.method == "unsubscribe":
                self._unsubscribe(request, params.channel, symbol)
            elif (params.channel, symbol) in self.subscriptions:
                self.refuse(request, "Already subscribed", symbol)
            else:
                made = params.subscription(self, self.source, pair)
                self.subscriptions[(params.channel, symbol)] = made
                self.reply(request, made.result(request.method))
                made.start()  # its snapshot follows the reply

    def _instrument(self, request: Request, snapshot: bool) -> None:
        key = ("instrument", "")
        if request.method == "unsubscribe":
            if key not in self.subscriptions:
                self.refuse(request, "Subscription Not Found")
            else:
                del self.subscriptions[key]
                self.reply(request, {"channel": "instrument"})
        elif key in self.subscriptions:
            self.refuse(request, "Already subscribed")
        else:
            self.subscriptions[key] = None
            self.reply(request, {"channel": "instrument", "snapshot": snapshot})
            if snapshot:
                pairs = (self.source.pairs[s] for s in self.source.listed())
                self.queue(None, kraken_frames.instruments(pairs))

    def _unsubscribe(self, request: Request, channel: str, symbol: str) -> None:
        subscription = self.subscriptions.pop((channel, symbol), None)
        if subscription is None:
            self.refuse(request, "Subscription Not Found", symbol)
        else:
            subscription.stop()
            self.reply(request, subscription.result("unsubscribe"))


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    req_id: int | None
    time_in: str


@dataclass(frozen=True, slots=True)
class Params:
    """The `params` of a subscribe or unsubscribe request."""

    channel: str
    symbols: list[Any]
    snapshot: bool
    depth: int
    trigger: str

    @classmethod
    def read(cls, raw: Any) -> Params | str:
        """The params, or the name of the argument that is wrong."""
        if not isinstance(raw, dict) or raw.get("channel") not in CHANNELS:
            return "channel"
        channel, symbols = raw["channel"], raw.get("symbol", [])
        params = cls(channel, symbols, raw.get("snapshot", True), raw.get("depth", 10),
                     raw.get("event_trigger", "trades"))  # fmt: skip
        if type(params.snapshot) is not bool:
            return "snapshot"
        if channel == "book" and params.depth not in DEPTHS:
            return "depth"
        if channel == "ticker" and params.trigger not in TRIGGERS:
            return "event_trigger"
        if channel != "instrument" and (type(symbols) is not list or not symbols):
            return "symbol"
        return params

    def subscription(self, outbox: Connection, source: KrakenSource, pair: Pair) -> Subscription:
        if self.channel == "book":
            return BookSubscription(outbox, source, pair, self.snapshot, self.depth)
        if self.channel == "trade":
            return TradeSubscription(outbox, source, pair, self.snapshot)
        return TickerSubscription(outbox, source, pair, self.snapshot, self.trigger)
