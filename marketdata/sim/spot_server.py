"""The simulator in Binance spot's wire format, from the same sources as the futures one.

REST  GET /api/v3/depth?symbol=FTMUSDT&limit=5000
      GET /api/v3/exchangeInfo                                         (the symbol list)
      GET /api/v3/aggTrades?symbol=FTMUSDT&fromId=10000001&limit=1000  (recent ones)
WS    /stream?streams=ftmusdt@depth@100ms/ftmusdt@bookTicker/ftmusdt@aggTrade

The fault scenarios act as on futures (sim/scenarios.py): gap/duplicate/reorder on
depthUpdate, disconnect, silence, malformed and oversize frames on each connection, and
snapshot_status on GET /api/v3/depth.

Spot has one route for every stream. Its depthUpdate has no `pu` (and no `T`), its
bookTicker no `e`, `E` or `T`, its snapshot no `E` or `T`: those fields are taken out of
what the source renders. A generated source must chain ids consecutively
(GeneratedSource(consecutive_ids=True)); a replayed spot capture already does.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from marketdata.sim.scenarios import Disconnect, Scenario, apply
from marketdata.sim.server import refused_snapshot
from marketdata.sim.sources import Source
from marketdata.venues.binance.spot import AGG_TRADES_MAX_LIMIT, MAX_SNAPSHOT_LIMIT

SOURCE = web.AppKey("spot_source", Source)
PING_INTERVAL = web.AppKey("spot_ping_interval", float)
SCENARIO = web.AppKey("spot_scenario", Scenario)
PATHS = ("/api/v3/...", "/stream")
BAD_LIMIT = orjson.dumps({"code": -1100, "msg": "Illegal characters found in parameter 'limit'."})
NO_SYMBOL = b'{"code":-1102,"msg":"Mandatory parameter symbol"}'
# Futures fields spot does not send, per event type (a snapshot: "E" and "T").
_NOT_ON_SPOT: dict[Any, tuple[str, ...]] = {
    "depthUpdate": ("pu", "T"),
    "bookTicker": ("e", "E", "T"),
}


def create_spot_app(
    source: Source, ping_interval_s: float = 180.0, scenario: Scenario | None = None
) -> web.Application:
    app = web.Application()
    add_spot_routes(app, source, ping_interval_s, scenario)
    return app


def add_spot_routes(
    app: web.Application,
    source: Source,
    ping_interval_s: float = 180.0,
    scenario: Scenario | None = None,
) -> None:
    app[SOURCE] = source
    app[PING_INTERVAL] = ping_interval_s
    app[SCENARIO] = scenario or Scenario()
    app.router.add_get("/api/v3/depth", depth_snapshot)
    app.router.add_get("/api/v3/exchangeInfo", exchange_info)
    app.router.add_get("/api/v3/aggTrades", agg_trades)
    app.router.add_get("/stream", combined_stream)


async def exchange_info(request: web.Request) -> web.Response:
    symbols = [{"symbol": s, "status": "TRADING"} for s in request.app[SOURCE].listed()]
    body = orjson.dumps(
        {"timezone": "UTC", "serverTime": int(time.time() * 1000), "symbols": symbols}
    )
    return web.Response(body=body, content_type="application/json")


async def depth_snapshot(request: web.Request) -> web.Response:
    symbol = request.query.get("symbol", "").upper()
    limit = _int(request.query.get("limit", "100"))
    if not 1 <= limit <= MAX_SNAPSHOT_LIMIT:
        return web.Response(status=400, body=BAD_LIMIT, content_type="application/json")
    if not symbol:
        return web.Response(status=400, body=NO_SYMBOL, content_type="application/json")
    scenario = request.app[SCENARIO]
    loop_time = asyncio.get_running_loop().time()
    if scenario.refuses_snapshot(loop_time, symbol):
        return refused_snapshot(scenario)
    status, body = request.app[SOURCE].snapshot(symbol, limit)
    scenario.snapshot_log.append((loop_time, symbol, status))
    if status == 200:
        body = spot_shaped(body)
    return web.Response(status=status, body=body, content_type="application/json")


async def agg_trades(request: web.Request) -> web.Response:
    symbol = request.query.get("symbol", "").upper()
    if not symbol:
        return web.Response(status=400, body=NO_SYMBOL, content_type="application/json")
    limit = _int(request.query.get("limit", "500"))
    from_text = request.query.get("fromId")
    from_id = None if from_text is None else _int(from_text)
    if not 1 <= limit <= AGG_TRADES_MAX_LIMIT or from_id == -1:
        return web.Response(status=400, body=BAD_LIMIT, content_type="application/json")
    status, body = request.app[SOURCE].agg_trades(symbol, from_id, limit)
    return web.Response(status=status, body=body, content_type="application/json")


async def combined_stream(request: web.Request) -> web.WebSocketResponse:
    streams = {s for s in request.query.get("streams", "").split("/") if s}
    ws = web.WebSocketResponse(heartbeat=request.app[PING_INTERVAL], autoping=True)
    await ws.prepare(request)
    sender = asyncio.create_task(_send(ws, request.app, streams)) if streams else None
    try:
        async for _ in ws:
            pass  # spot's SUBSCRIBE is not simulated: streams are named in the URL
    finally:
        if sender is not None:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await sender
    return ws


async def _send(ws: web.WebSocketResponse, app: web.Application, streams: set[str]) -> None:
    frames = (spot_shaped(f) async for f in app[SOURCE].frames(streams))
    try:
        async for frame in apply(app[SCENARIO], frames, streams):
            if ws.closed:
                return
            await ws.send_frame(frame, WSMsgType.TEXT)
    except Disconnect:
        await ws.close(code=1001, message=b"simulated disconnect")


def spot_shaped(body: bytes) -> bytes:
    """A futures-shaped frame or snapshot body without the fields spot does not send."""
    message = orjson.loads(body)
    data: Any = message.get("data", message) if isinstance(message, dict) else None
    if not isinstance(data, dict):
        return body
    drop = ("E", "T") if "lastUpdateId" in data else _NOT_ON_SPOT.get(data.get("e"), ())
    if not drop or not any(key in data for key in drop):
        return body  # already spot-shaped (a replayed spot capture)
    for key in drop:
        data.pop(key, None)
    return orjson.dumps(message)


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return -1
