"""The simulator in OKX v5 public's wire format (`wss://ws.okx.com:8443/ws/v5/public`).

WS  /okx/ws/v5/public
    {"op":"subscribe","args":[{"channel":"books","instId":"BTC-USDT"},...]}
        each arg answered by {"event":"subscribe","arg":{...},"connId":...}; `books` then
        sends its snapshot (prevSeqId -1) and updates chained on seqId/prevSeqId, each
        with the legacy checksum (0 for every one with OkxSource(checksums=False));
        channels: books (400 levels), trades (string tradeId per instrument, the taker's
        side), bbo-tbt
    {"op":"unsubscribe","args":[...]}   likewise
    an unknown channel or instId, or a refused one: {"event":"error","code":"60018",
        "msg":"Wrong URL or channel:books,instId:X doesn't exist...","connId":...};
        a request that is not JSON or has no known op: code 60012
    text `ping`                         -> text `pong`
GET /api/v5/market/books?instId=BTC-USDT&sz=400&source=0
        {"code":"0","msg":"","data":[{"asks","bids","ts","seqId"}]} (the top `sz` levels,
        at most 400); an unknown instId: code 51001

All frames of a connection (replies too) go out in order through one queue and the
scenario's faults (sim/scenarios.py): gap/duplicate/reorder act on `books` updates (the
client sees the seqId chain break); checksum_corrupt_every sends a wrong checksum (with
checksums off, a wrong prevSeqId); reject_symbols and reject_subscribes (every subscribe
request of a connection counts) answer code 60018; upgrade_notice_after_s sends the
64008 notice and closes the connection `upgrade_close_s` later; snapshot_status refuses
REST snapshots. A silence is per instrument, as in the Kraken dialect. Replay of a
capture is not served in this dialect: the markets are generated.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from marketdata.sim import okx_frames
from marketdata.sim.okx_book import DEPTH, BookView, top
from marketdata.sim.okx_market import OkxSource
from marketdata.sim.okx_subscriptions import CHANNELS, Subscription
from marketdata.sim.scenarios import (
    Disconnect,
    Scenario,
    Wire,
    faults,
    quoted_after,
    silenced,
    start_silence,
)

WS_PATH = "/okx/ws/v5/public"
REST_PATH = "/api/v5/market/books"
PATHS = (WS_PATH, REST_PATH)
SOURCE = web.AppKey("okx_source", OkxSource)
SCENARIO = web.AppKey("okx_scenario", Scenario)
QUEUE_LIMIT = 100_000  # frames; a client this far behind misses updates (its chain breaks)
REJECTED = "60018"
INVALID = "60012"
WIRE = Wire(
    is_diff=lambda frame: (
        frame.startswith(b'{"arg":{"channel":"books"')
        and frame.find(b'"action":"update"', 0, 128) > 0
    ),
    malformed=(
        b'{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"asks":',
        b"\xff\xfe x",
        b"[]",
    ),
    oversize_head=b'{"arg":{"channel":"x"},"data":"',
    symbol_of=lambda frame: quoted_after(frame, b"instId"),
)


def create_okx_app(source: OkxSource, scenario: Scenario | None = None) -> web.Application:
    app = web.Application()
    create_okx_routes(app, source, scenario)
    return app


def create_okx_routes(
    app: web.Application, source: OkxSource, scenario: Scenario | None = None
) -> None:
    app[SOURCE] = source
    app[SCENARIO] = scenario or Scenario()
    app.router.add_get(WS_PATH, okx_stream)
    app.router.add_get(REST_PATH, rest_books)


def _missing(channel: str, inst_id: Any) -> str:
    return (f"Wrong URL or channel:{channel},instId:{inst_id} doesn't exist. Please use the "
            "correct URL, channel and parameters referring to API document.")  # fmt: skip


async def rest_books(request: web.Request) -> web.Response:
    source, scenario = request.app[SOURCE], request.app[SCENARIO]
    inst_id = request.query.get("instId", "")
    if inst_id not in source.pairs:
        body = okx_frames.rest_error("51001", "Instrument ID does not exist")
        return web.Response(body=body, content_type="application/json")
    if scenario.refuses_snapshot(asyncio.get_running_loop().time(), inst_id):
        body = okx_frames.rest_error("50011", "Too Many Requests")
        headers = scenario.refusal_headers()
        return web.Response(
            body=body, status=scenario.snapshot_status, headers=headers,
            content_type="application/json",
        )  # fmt: skip
    try:
        size = max(1, min(DEPTH, int(request.query.get("sz", "1"))))
    except ValueError:
        body = okx_frames.rest_error("51000", "Parameter sz error")
        return web.Response(body=body, content_type="application/json")
    market = source.market(inst_id)
    shape = source.pairs[inst_id].shape
    texts = BookView(shape.price_dp, shape.qty_dp).texts
    bids = [texts(level) for level in top(market, "b", size)]
    asks = [texts(level) for level in top(market, "a", size)]
    body = okx_frames.rest_book(bids, asks, source.seq[inst_id])
    return web.Response(body=body, content_type="application/json")


async def okx_stream(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(autoping=True)
    await ws.prepare(request)
    connection = Connection(request.app[SOURCE], request.app[SCENARIO])
    tasks = [
        asyncio.create_task(_send(ws, connection)),
        asyncio.create_task(_upgrade(ws, connection)),
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
        symbols=lambda: (),  # silences are started per instrument by Connection.queue
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


async def _upgrade(ws: web.WebSocketResponse, connection: Connection) -> None:
    """upgrade_notice_after_s into the connection: the 64008 notice, then the close."""
    scenario = connection.scenario
    if not scenario.upgrade_notice_after_s:
        return
    await asyncio.sleep(scenario.upgrade_notice_after_s)
    if not scenario.enabled:
        return
    connection.queue(None, okx_frames.notice(connection.id))
    await asyncio.sleep(scenario.upgrade_close_s)
    await ws.close(code=1012, message=b"service upgrade")


class Connection:
    """One client's subscriptions and the frames queued for it."""

    def __init__(self, source: OkxSource, scenario: Scenario) -> None:
        self.source = source
        self.scenario = scenario
        self.id = secrets.token_hex(4)
        self.subscriptions: dict[tuple[str, str], Subscription] = {}  # (channel, instId)
        self._queue: asyncio.Queue[tuple[Subscription | None, bytes]] = asyncio.Queue(QUEUE_LIMIT)
        self._subscribes = 0  # subscribe requests so far
        self._updates = 0  # books updates so far
        self._sent: dict[str, int] = {}  # instId -> its frames so far

    def queue(self, subscription: Subscription | None, frame: bytes) -> None:
        if subscription is not None and self.scenario.silence_ms:
            self._count(subscription.symbol)
        if not self._queue.full():  # else the client misses it, as a slow one would live
            self._queue.put_nowait((subscription, frame))

    def _count(self, symbol: str) -> None:
        """After every `silence_every` frames of an instrument, it goes silent (on every
        connection), then sends what it missed."""
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

    def cut(self) -> bool:
        """Whether disconnect_every applies to this connection as it stands."""
        kinds = {k.lower() for k in self.scenario.disconnect_streams}
        return not kinds or any(k in channel for channel, _ in self.subscriptions for k in kinds)

    def close(self) -> None:
        for subscription in self.subscriptions.values():
            subscription.stop()
        self.subscriptions.clear()

    def handle(self, text: str) -> None:
        """Answer one request (replies are queued in order with the data)."""
        if text == "ping":
            self.queue(None, okx_frames.PONG)
            return
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError:
            message = None
        op = message.get("op") if isinstance(message, dict) else None
        args = message.get("args") if isinstance(message, dict) else None
        if op not in ("subscribe", "unsubscribe") or type(args) is not list or not args:
            self._error(INVALID, f"Invalid request: {text[:200]}")
            return
        if op == "subscribe":
            self._subscribes += 1
            if self.scenario.enabled and self._subscribes <= self.scenario.reject_subscribes:
                self._error(REJECTED, "Wrong URL or channel, please check the request.")
                return
        for arg in args:
            self._arg(op, arg)

    def _error(self, code: str, msg: str) -> None:
        self.queue(None, okx_frames.error(code, msg, self.id))

    def _arg(self, op: str, arg: Any) -> None:
        channel = arg.get("channel") if isinstance(arg, dict) else None
        inst_id = arg.get("instId") if isinstance(arg, dict) else None
        kind = CHANNELS.get(channel) if isinstance(channel, str) else None
        if kind is None or not isinstance(inst_id, str) or inst_id not in self.source.pairs:
            self._error(REJECTED, _missing(str(channel), inst_id))
            return
        if self.scenario.enabled and inst_id in self.scenario.reject_symbols:
            self._error(REJECTED, _missing(str(channel), inst_id))
            return
        key = (str(channel), inst_id)
        old = self.subscriptions.pop(key, None)
        if old is not None:
            old.stop()
        if op == "unsubscribe":
            self.queue(None, okx_frames.reply(op, {"channel": key[0], "instId": inst_id}, self.id))
            return
        made = self.subscriptions[key] = kind(self, self.source, inst_id)
        self.queue(None, okx_frames.reply(op, made.arg, self.id))
        made.start()  # its snapshot follows the reply
