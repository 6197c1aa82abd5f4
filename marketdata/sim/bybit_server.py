"""The simulator in Bybit v5 public WebSocket's wire format
(`wss://stream.bybit.com/v5/public/{spot,linear,inverse}`).

WS  /bybit/v5/public/linear   (also /spot and /inverse: the same generated symbols)
    {"op":"subscribe","args":["orderbook.50.BTCUSDT","publicTrade.BTCUSDT"],"req_id":"1"}
        -> {"success":true,"ret_msg":"","conn_id":"...","req_id":"1","op":"subscribe"},
           then each book topic's snapshot and its deltas (`u` +1 each, `seq`, `ts`, `cts`)
        a topic Bybit does not serve (bad depth, unlisted symbol) fails the request:
        {"success":false,"ret_msg":"error:handler not found,topic:orderbook.7.BTCUSDT",...}
        naming its first bad topic (the others of the request are subscribed); a topic
        subscribed already: "error:already subscribed,topic:..."
    topics: orderbook.{1|50|200|1000}.{symbol}, publicTrade.{symbol} (taker side `S`,
            string ids `i`: UUIDs on linear and inverse, digits on spot), tickers.{symbol}
    {"op":"unsubscribe","args":[...],"req_id":"2"}   likewise
    {"op":"ping","req_id":"3"}  -> {"success":true,"ret_msg":"pong",...,"op":"ping"}
                                   (spot: {"req_id":"3","op":"pong","args":["<ms>"],...})
    limits: spot takes 10 args per request; `args` at most 21,000 characters of JSON

A book topic with no frame for `resend_s` (3 s) sends its snapshot again, `u` unchanged.
All frames of a connection (replies too) go out in order through one queue and the
scenario's faults (sim/scenarios.py): gap/duplicate/reorder act on book deltas (the
client sees `u` break and resubscribes that symbol; a reorder of two symbols' deltas
breaks neither); restart_every, reject_symbols
("error:handler not found") and reject_subscribes ("Params Error", naming no topic) are
Bybit's own. A silence is per symbol: after every `silence_every` frames of a symbol, that
symbol alone pauses and then resumes with a snapshot. Replay of a capture is not served
in this dialect: the markets are generated.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import string
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from marketdata.sim import bybit_frames
from marketdata.sim.bybit_book import DEPTHS
from marketdata.sim.bybit_market import BybitSource
from marketdata.sim.bybit_subscriptions import (
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
    quoted_after,
    silenced,
    start_silence,
)

CATEGORIES = ("spot", "linear", "inverse")
PATHS = tuple(f"/bybit/v5/public/{category}" for category in CATEGORIES)
SOURCE = web.AppKey("bybit_source", BybitSource)
SCENARIO = web.AppKey("bybit_scenario", Scenario)
RESEND_S = web.AppKey("bybit_resend_s", float)
QUEUE_LIMIT = 100_000  # frames; a client this far behind misses deltas (its `u` breaks)
SPOT_MAX_ARGS = 10
MAX_ARGS_CHARS = 21_000
PARAMS_ERROR = "Params Error"  # a request Bybit cannot take; reject_subscribes answers it
WIRE = Wire(
    is_diff=lambda frame: frame.startswith(b'{"topic":"orderbook.') and b'"type":"delta"' in frame,
    malformed=(b'{"topic":"orderbook.50.BTCUSDT","data":{"s":', b"\xff\xfe x", b"[]"),
    oversize_head=b'{"topic":"x","data":"',
    symbol_of=lambda frame: quoted_after(frame, b"topic").rsplit(".", 1)[-1],  # orderbook.50.X
)


def create_bybit_app(
    source: BybitSource, scenario: Scenario | None = None, resend_s: float = 3.0
) -> web.Application:
    app = web.Application()
    create_bybit_routes(app, source, scenario, resend_s)
    return app


def create_bybit_routes(
    app: web.Application,
    source: BybitSource,
    scenario: Scenario | None = None,
    resend_s: float = 3.0,
) -> None:
    app[SOURCE] = source
    app[SCENARIO] = scenario or Scenario()
    app[RESEND_S] = resend_s
    app.router.add_get("/bybit/v5/public/{category:spot|linear|inverse}", bybit_stream)


async def bybit_stream(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(autoping=True)
    await ws.prepare(request)
    category = request.match_info["category"]
    connection = Connection(request.app[SOURCE], request.app[SCENARIO], category)
    tasks = [
        asyncio.create_task(_send(ws, connection)),
        asyncio.create_task(_resends(connection, request.app[RESEND_S])),
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
    frames = faults(
        connection.scenario,
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


async def _resends(connection: Connection, after_s: float) -> None:
    while True:
        await asyncio.sleep(min(0.5, after_s / 4))
        now = time.monotonic()
        for subscription in list(connection.subscriptions.values()):
            if isinstance(subscription, BookSubscription):
                subscription.resend(now, after_s)


def _conn_id() -> str:
    """Like Bybit's "d8bu1olkndm7crnfs1e0-j6akw"."""
    chars = string.ascii_lowercase + string.digits
    return "".join(random.choices(chars, k=20)) + "-" + "".join(random.choices(chars, k=5))


class Connection:
    """One client's subscriptions (topic -> subscription) and the frames queued for it."""

    def __init__(self, source: BybitSource, scenario: Scenario, category: str) -> None:
        self.source = source
        self.scenario = scenario
        self.category = category
        self.id = _conn_id()
        self.subscriptions: dict[str, Subscription] = {}
        self._queue: asyncio.Queue[tuple[Subscription | None, bytes]] = asyncio.Queue(QUEUE_LIMIT)
        self._subscribes = 0  # subscribe requests so far
        self._deltas = 0  # book deltas so far
        self._sent: dict[str, int] = {}  # symbol -> its frames so far

    def queue(self, subscription: Subscription | None, frame: bytes) -> None:
        if subscription is not None and self.scenario.silence_ms:
            self._count(subscription.symbol)
        if not self._queue.full():  # else the client misses it, as a slow one would live
            self._queue.put_nowait((subscription, frame))

    def _count(self, symbol: str) -> None:
        """After every `silence_every` frames of a symbol, that symbol goes silent (its
        topics on every connection hold back, then resume)."""
        sent = self._sent[symbol] = self._sent.get(symbol, 0) + 1
        if sent % self.scenario.silence_every == 0 and silenced(self.scenario, (symbol,)):
            start_silence(self.scenario, symbol)

    def restarts_next_delta(self) -> bool:
        self._deltas += 1
        every = self.scenario.restart_every
        return self.scenario.enabled and every > 0 and self._deltas % every == 0

    async def frames(self) -> AsyncIterator[bytes]:
        """The queued frames, less those of subscriptions ended since they were queued."""
        while True:
            subscription, frame = await self._queue.get()
            if subscription is None or subscription.active:
                yield frame

    def cut(self) -> bool:
        """Whether disconnect_every applies to this connection as it stands."""
        kinds = {k.lower() for k in self.scenario.disconnect_streams}
        return not kinds or any(k in topic.lower() for topic in self.subscriptions for k in kinds)

    def close(self) -> None:
        for subscription in self.subscriptions.values():
            subscription.stop()
        self.subscriptions.clear()

    def handle(self, text: str) -> None:
        """Answer one request (replies are queued in order with the data)."""
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError:
            message = None
        if not isinstance(message, dict):
            self._reply("", False, "error:request not json", "")
            return
        op, req_id = message.get("op"), message.get("req_id", "")
        req_id = req_id if type(req_id) is str else str(req_id)
        if op == "ping":
            self.queue(None, bybit_frames.pong(self.category, self.id, req_id, _now_ms()))
        elif op in ("subscribe", "unsubscribe"):
            problem = self._args_problem(message.get("args"))
            if problem is not None:
                self._reply(op, False, problem, req_id)
            elif op == "subscribe":
                self._subscribe(message["args"], req_id)
            else:
                self._unsubscribe(message["args"], req_id)
        else:
            self._reply(str(op), False, f"error:unsupported op {op}", req_id)

    def _reply(self, op: str, success: bool, ret_msg: str, req_id: str) -> None:
        self.queue(None, bybit_frames.reply(op, success, ret_msg, self.id, req_id))

    def _args_problem(self, args: Any) -> str | None:
        if type(args) is not list or not args or any(type(a) is not str for a in args):
            return PARAMS_ERROR
        if self.category == "spot" and len(args) > SPOT_MAX_ARGS:
            return f"args size >{SPOT_MAX_ARGS}"
        if len(orjson.dumps(args)) > MAX_ARGS_CHARS:
            return f"args length >{MAX_ARGS_CHARS}"
        return None

    def _subscribe(self, topics: list[str], req_id: str) -> None:
        self._subscribes += 1
        if self.scenario.enabled and self._subscribes <= self.scenario.reject_subscribes:
            self._reply("subscribe", False, PARAMS_ERROR, req_id)
            return
        failures, made = [], []
        for topic in topics:
            if topic in self.subscriptions:
                failures.append(f"error:already subscribed,topic:{topic}")
                continue
            subscription = self._make(topic)
            if subscription is None:
                failures.append(f"error:handler not found,topic:{topic}")
            else:
                self.subscriptions[topic] = subscription
                self.source.subscribed[topic] += 1
                made.append(subscription)
        # Bybit names one failing topic; the client asks again for the others alone.
        self._reply("subscribe", not failures, failures[0] if failures else "", req_id)
        for subscription in made:
            subscription.start()  # its snapshot follows the reply

    def _make(self, topic: str) -> Subscription | None:
        """The subscription a topic asks for; None if Bybit would not serve it."""
        channel, _, rest = topic.partition(".")
        depth = 0
        if channel == "orderbook":
            depth_text, _, rest = rest.partition(".")
            depth = int(depth_text) if depth_text.isdigit() else 0
            if depth not in DEPTHS:
                return None
        pair = self.source.pairs.get(rest)
        if pair is None or (self.scenario.enabled and rest in self.scenario.reject_symbols):
            return None
        if channel == "orderbook":
            return BookSubscription(self, self.source, pair, topic, depth)
        if channel == "publicTrade":
            return TradeSubscription(self, self.source, pair, topic)
        if channel == "tickers":
            return TickerSubscription(self, self.source, pair, topic)
        return None

    def _unsubscribe(self, topics: list[str], req_id: str) -> None:
        missing = []
        for topic in topics:
            subscription = self.subscriptions.pop(topic, None)
            if subscription is None:
                missing.append(topic)
            else:
                subscription.stop()
        ret_msg = f"error:not subscribed,topic:{missing[0]}" if missing else ""
        self._reply("unsubscribe", not missing, ret_msg, req_id)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
