"""The simulator in Coinbase Advanced Trade's market data format
(`wss://advanced-trade-ws.coinbase.com`), at the path /coinbase.

WS  /coinbase
    {"type":"subscribe","product_ids":["BTC-USD"],"channel":"level2"}   one channel per
        request; its snapshots (one frame per product), then the `subscriptions` listing
        of everything the connection is subscribed to now (cumulative)
    {"type":"unsubscribe",...}          likewise, answered by the listing alone
    channels: level2 (frames on `l2_data`: the whole book as a snapshot, then updates with
              absolute `new_quantity`, side "bid"/"offer"), market_trades (`side` is the
              maker's; newest first; a subscribe repeats the last 100 trades), ticker (best
              bid and ask as the book stands after the l2_data update of the same step),
              heartbeats (one frame a second, listed as ["heartbeats"])
    a refused request: {"type":"error","message":...} (no channel, no sequence_num)

`sequence_num` is one counter per connection over every frame of every channel and
product, from 0; it is given as a frame leaves its queue, so a frame the scenario drops
leaves a gap. A connection that has subscribed nothing within `subscribe_within_s` (5 s,
as Coinbase) is closed.

Faults (sim/scenarios.py): gap/duplicate/reorder act on every sequenced frame of a
connection (the client must resync every product on it), only on connections carrying one
of `fault_symbols` if that is set, which also limits disconnect_every; reject_symbols and
reject_subscribes answer with Coinbase's error frame; malformed frames are valid UTF-8 the
parser refuses; an oversize frame (5 MiB) is within the client's 32 MiB limit, so it is
read and skipped, not a disconnect; a silence is per product, as on Kraken. Generated
markets only.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
from aiohttp import WSCloseCode, WSMsgType, web

from marketdata.sim import coinbase_frames as frames
from marketdata.sim.coinbase_frames import Event
from marketdata.sim.coinbase_market import CoinbaseSource
from marketdata.sim.coinbase_streams import PRODUCT_CHANNELS, ProductStream
from marketdata.sim.scenarios import Disconnect, Scenario, Wire, faults, silenced, start_silence

PATH = "/coinbase"
PATHS = (PATH,)
SOURCE = web.AppKey("coinbase_source", CoinbaseSource)
SCENARIO = web.AppKey("coinbase_scenario", Scenario)
HEARTBEAT_S = web.AppKey("coinbase_heartbeat_s", float)
SUBSCRIBE_WITHIN_S = web.AppKey("coinbase_subscribe_within_s", float)
QUEUE_LIMIT = 100_000  # frames; a client this far behind is cut off, as a slow one would be
HEARTBEATS = "heartbeats"
CHANNELS = (*PRODUCT_CHANNELS, HEARTBEATS)
MALFORMED = (  # valid UTF-8 (else the client's WebSocket fails): its parser must refuse them
    b'{"channel":"l2_data","timestamp":"x","sequence_num":',
    b'{"channel":"l2_data","sequence_num":"7","events":[]}',
    b"[]",
)

Queued = tuple[str, Event] | bytes  # (channel, event) to number and wrap; or an error frame


def create_coinbase_app(
    source: CoinbaseSource,
    scenario: Scenario | None = None,
    heartbeat_s: float = 1.0,
    subscribe_within_s: float = 5.0,
) -> web.Application:
    app = web.Application()
    create_coinbase_routes(app, source, scenario, heartbeat_s, subscribe_within_s)
    return app


def create_coinbase_routes(
    app: web.Application,
    source: CoinbaseSource,
    scenario: Scenario | None = None,
    heartbeat_s: float = 1.0,
    subscribe_within_s: float = 5.0,
) -> None:
    app[SOURCE] = source
    app[SCENARIO] = scenario or Scenario()
    app[HEARTBEAT_S] = heartbeat_s
    app[SUBSCRIBE_WITHIN_S] = subscribe_within_s
    app.router.add_get(PATH, coinbase_stream)


async def coinbase_stream(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(autoping=True)
    await ws.prepare(request)
    connection = Connection(request.app[SOURCE], request.app[SCENARIO])
    tasks = [
        asyncio.create_task(_send(ws, connection)),
        asyncio.create_task(_heartbeats(connection, request.app[HEARTBEAT_S])),
        asyncio.create_task(_subscribe_deadline(ws, connection, request.app[SUBSCRIBE_WITHIN_S])),
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
    wire = Wire(
        is_diff=lambda frame: connection.faulty(),  # every frame counts on a faulty connection
        malformed=MALFORMED,
        oversize_head=b'{"channel":"x","events":"',
    )
    scenario = connection.scenario
    sent = faults(scenario, connection.frames(), wire, lambda: (), connection.cut, wait=False)
    try:
        async for frame in sent:
            if ws.closed:
                return
            await ws.send_frame(frame, WSMsgType.TEXT)
    except Disconnect:
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"simulated disconnect")
    except SlowClient:
        await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"slow client")


async def _heartbeats(connection: Connection, every_s: float) -> None:
    loop = asyncio.get_running_loop()
    started, counter = loop.time(), 0
    while True:
        await asyncio.sleep(every_s)
        if connection.heartbeats:
            event = frames.heartbeat(counter, loop.time() - started)
            connection.queue(None, HEARTBEATS, event)
            counter += 1


async def _subscribe_deadline(
    ws: web.WebSocketResponse, connection: Connection, within_s: float
) -> None:
    await asyncio.sleep(within_s)
    if not connection.subscribed:
        await ws.close(code=WSCloseCode.POLICY_VIOLATION,
                       message=f"no subscribe within {within_s:g}s".encode())  # fmt: skip


class SlowClient(Exception):
    """The connection's queue overflowed: the client is too far behind."""


class Connection:
    """One client's subscriptions and the frames queued for it."""

    def __init__(self, source: CoinbaseSource, scenario: Scenario) -> None:
        self.source = source
        self.scenario = scenario
        self.streams: dict[str, ProductStream] = {}
        self.heartbeats = False
        self.subscribed = False  # something was subscribed (the 5 s rule)
        self._queue: asyncio.Queue[Queued] = asyncio.Queue(QUEUE_LIMIT)
        self._overflowed = False
        self._sequence = 0
        self._subscribes = 0  # subscribe requests so far
        self._sent: dict[str, int] = {}  # product -> its frames so far

    def queue(self, product: str | None, channel: str, event: Event) -> None:
        if product is not None and self.scenario.silence_ms:
            self._count(product)
        self._put((channel, event))

    def refuse(self, message: str) -> None:
        self._put(frames.error(message))

    def _put(self, item: Queued) -> None:
        if self._queue.full():
            self._overflowed = True
        else:
            self._queue.put_nowait(item)

    def _count(self, product: str) -> None:
        """After every `silence_every` frames of a product, that product goes silent."""
        sent = self._sent[product] = self._sent.get(product, 0) + 1
        if sent % self.scenario.silence_every == 0 and silenced(self.scenario, (product,)):
            start_silence(self.scenario, product)

    async def frames(self) -> AsyncIterator[bytes]:
        """The queued frames, each data frame numbered as it leaves."""
        while True:
            if self._overflowed:
                raise SlowClient
            item = await self._queue.get()
            if isinstance(item, bytes):
                yield item
                continue
            channel, event = item
            frame = frames.envelope(channel, self._sequence, [event])
            self._sequence += 1
            yield frame

    def products(self) -> set[str]:
        return {p for p, stream in self.streams.items() if stream.channels}

    def faulty(self) -> bool:
        """Whether the frame faults apply to this connection as it stands."""
        chosen = self.scenario.fault_symbols
        return not chosen or not chosen.isdisjoint(self.products())

    def cut(self) -> bool:
        """Whether disconnect_every applies to this connection as it stands."""
        kinds = {k.lower() for k in self.scenario.disconnect_streams}
        channels = {c for stream in self.streams.values() for c in stream.channels}
        return self.faulty() and (not kinds or any(k in c for c in channels for k in kinds))

    def close(self) -> None:
        for stream in self.streams.values():
            stream.stop()
        self.streams.clear()
        self.heartbeats = False

    def handle(self, text: str) -> None:
        """Answer one request (its frames are queued in order with the data)."""
        try:
            message: Any = orjson.loads(text)
        except orjson.JSONDecodeError:
            message = None
        if not isinstance(message, dict):
            self.refuse("Malformed request: not a JSON object")
            return
        kind, channel = message.get("type"), message.get("channel")
        products = message.get("product_ids", [])
        if kind not in ("subscribe", "unsubscribe"):
            self.refuse(f"Unknown message type {kind!r}")
        elif channel not in CHANNELS:
            self.refuse(f"Failed to {kind}: unknown channel {channel!r}")
        elif type(products) is not list or not all(type(p) is str for p in products):
            self.refuse(f"Failed to {kind}: product_ids must be a list of strings")
        elif channel != HEARTBEATS and not products:
            self.refuse(f"Failed to {kind}: no product_ids for {channel}")
        elif kind == "subscribe":
            self._subscribe(channel, products)
        else:
            self._unsubscribe(channel, products)

    def _subscribe(self, channel: str, products: list[str]) -> None:
        self._subscribes += 1
        scenario = self.scenario
        if channel != HEARTBEATS:
            unknown = [p for p in products if p not in self.source.products]
            if unknown:
                self.refuse(f"Failed to subscribe: unknown product_ids {', '.join(unknown)}")
                return
        if scenario.enabled and self._subscribes <= scenario.reject_subscribes:
            self.refuse("Failed to subscribe: service unavailable")
            return
        rejected = [p for p in products if scenario.enabled and p in scenario.reject_symbols]
        if channel != HEARTBEATS and rejected:
            self.refuse(f"Failed to subscribe: {', '.join(rejected)} not available")
            return
        self.subscribed = True
        if channel == HEARTBEATS:
            self.heartbeats = True
        else:
            for product in products:
                stream = self.streams.get(product)
                if stream is None:
                    stream = self.streams[product] = ProductStream(self, self.source, product)
                stream.subscribe(channel)
        self._listing()

    def _unsubscribe(self, channel: str, products: list[str]) -> None:
        if channel == HEARTBEATS:
            self.heartbeats = False
        else:
            for product in products:
                stream = self.streams.get(product)
                if stream is not None:
                    stream.unsubscribe(channel)
        self._listing()

    def _listing(self) -> None:
        channels: dict[str, list[str]] = {
            channel: sorted(p for p, s in self.streams.items() if channel in s.channels)
            for channel in PRODUCT_CHANNELS
        }
        if self.heartbeats:
            channels[HEARTBEATS] = [HEARTBEATS]
        self.queue(None, "subscriptions", frames.listing(channels))
