"""The simulator's HTTP/WebSocket server, in Binance USD-M futures' wire format.

REST  GET /fapi/v1/depth?symbol=BTCUSDT&limit=1000
      GET /fapi/v1/exchangeInfo                                         (the symbol list)
      GET /fapi/v1/aggTrades?symbol=BTCUSDT&fromId=10000001&limit=1000  (recent ones)
WS    /public/stream?streams=btcusdt@depth@100ms/btcusdt@bookTicker   (depth, bookTicker)
      /market/stream?streams=btcusdt@aggTrade                          (trades)
      /public/ws/<stream>, /market/ws/<stream>                          (raw, unwrapped)
      {"method": "SUBSCRIBE", "params": [...], "id": 1} on an open connection
As on the real exchange, a stream asked for on the wrong route delivers nothing.

The other dialects, served beside this one by sim/app.py's create_sim_app on one port:
Binance spot (spot_server.py)   REST /api/v3/depth, /api/v3/exchangeInfo, /api/v3/aggTrades
                                WS   /stream?streams=...
Kraken spot v2 (kraken_server.py) WS /kraken/v2 (subscribe/unsubscribe, ping, heartbeat)
Faults (scenarios.py) act on each connection of every dialect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import orjson
from aiohttp import WSMsgType, web

from marketdata.sim.scenarios import Disconnect, Scenario, apply
from marketdata.sim.sources import Source
from marketdata.venues.binance.futures import AGG_TRADES_MAX_LIMIT, SNAPSHOT_LIMITS

log = logging.getLogger(__name__)

SOURCE = web.AppKey("source", Source)
PING_INTERVAL = web.AppKey("ping_interval", float)
SCENARIO = web.AppKey("scenario", Scenario)
ROUTES = {
    "public": ("@depth", "@bookticker"),
    "market": ("@aggtrade", "@trade", "@kline", "@markprice"),
}
BAD_LIMIT = orjson.dumps({"code": -1100, "msg": "Illegal characters found in parameter 'limit'."})
NO_SYMBOL = b'{"code":-1102,"msg":"Mandatory parameter symbol"}'


PATHS = ("/fapi/v1/...", "/public/stream", "/market/stream", "/public/ws/", "/market/ws/")


def create_app(
    source: Source, ping_interval_s: float = 180.0, scenario: Scenario | None = None
) -> web.Application:
    app = web.Application()
    add_futures_routes(app, source, ping_interval_s, scenario)
    return app


def add_futures_routes(
    app: web.Application,
    source: Source,
    ping_interval_s: float = 180.0,
    scenario: Scenario | None = None,
) -> None:
    app[SOURCE] = source
    app[PING_INTERVAL] = ping_interval_s
    app[SCENARIO] = scenario or Scenario()
    app.router.add_get("/fapi/v1/depth", depth_snapshot)
    app.router.add_get("/fapi/v1/exchangeInfo", exchange_info)
    app.router.add_get("/fapi/v1/aggTrades", agg_trades)
    app.router.add_get("/{route:public|market}/stream", combined_stream)
    app.router.add_get("/{route:public|market}/ws/{stream}", raw_stream)


async def exchange_info(request: web.Request) -> web.Response:
    """The fields a client reads of the real reply: each symbol's name and status."""
    symbols = [
        {"symbol": s, "pair": s, "contractType": "PERPETUAL", "status": "TRADING"}
        for s in request.app[SOURCE].listed()
    ]
    body = orjson.dumps(
        {"timezone": "UTC", "serverTime": int(time.time() * 1000), "symbols": symbols}
    )
    return web.Response(body=body, content_type="application/json")


async def depth_snapshot(request: web.Request) -> web.Response:
    symbol = request.query.get("symbol", "").upper()
    try:
        limit = int(request.query.get("limit", "500"))
    except ValueError:
        limit = -1
    if limit not in SNAPSHOT_LIMITS:
        return web.Response(status=400, body=BAD_LIMIT, content_type="application/json")
    if not symbol:
        return web.Response(status=400, body=NO_SYMBOL)
    scenario = request.app[SCENARIO]
    loop_time = asyncio.get_running_loop().time()
    if scenario.refuses_snapshot(loop_time, symbol):
        return refused_snapshot(scenario)
    status, body = request.app[SOURCE].snapshot(symbol, limit)
    scenario.snapshot_log.append((loop_time, symbol, status))
    return web.Response(status=status, body=body, content_type="application/json")


def refused_snapshot(scenario: Scenario) -> web.Response:
    body = orjson.dumps({"code": -1003, "msg": "Too many requests (simulated)."})
    return web.Response(
        status=scenario.snapshot_status,
        body=body,
        headers=scenario.refusal_headers(),
        content_type="application/json",
    )


async def agg_trades(request: web.Request) -> web.Response:
    symbol = request.query.get("symbol", "").upper()
    if not symbol:
        return web.Response(status=400, body=NO_SYMBOL, content_type="application/json")
    try:
        limit = int(request.query.get("limit", "500"))
        from_text = request.query.get("fromId")
        from_id = int(from_text) if from_text is not None else None
    except ValueError:
        limit = -1
    if not 1 <= limit <= AGG_TRADES_MAX_LIMIT:
        return web.Response(status=400, body=BAD_LIMIT, content_type="application/json")
    status, body = request.app[SOURCE].agg_trades(symbol, from_id, limit)
    return web.Response(status=status, body=body, content_type="application/json")


async def combined_stream(request: web.Request) -> web.WebSocketResponse:
    streams = [s for s in request.query.get("streams", "").split("/") if s]
    return await _serve(request, request.match_info["route"], streams, wrapped=True)


async def raw_stream(request: web.Request) -> web.WebSocketResponse:
    return await _serve(
        request, request.match_info["route"], [request.match_info["stream"]], wrapped=False
    )


def _carried(route: str, stream: str) -> bool:
    return any(kind in stream.lower() for kind in ROUTES[route])


async def _serve(
    request: web.Request, route: str, streams: list[str], wrapped: bool
) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(heartbeat=request.app[PING_INTERVAL], autoping=True)
    await ws.prepare(request)
    wanted = {s for s in streams if _carried(route, s)}
    senders: list[asyncio.Task[None]] = []
    if wanted:
        senders.append(asyncio.create_task(_send(ws, request.app, wanted, wrapped)))
    try:
        async for message in ws:
            if message.type is WSMsgType.TEXT:
                reply, added = _control(message.data, route)
                if added:
                    senders.append(asyncio.create_task(_send(ws, request.app, added, wrapped)))
                if reply is not None:
                    await ws.send_frame(reply, WSMsgType.TEXT)
    finally:
        for task in senders:
            task.cancel()
        for task in senders:
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await task
    return ws


def _control(text: str, route: str) -> tuple[bytes | None, set[str]]:
    """A client request on an open connection: only SUBSCRIBE is understood."""
    try:
        request = orjson.loads(text)
        method, params, request_id = request["method"], request.get("params", []), request["id"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return orjson.dumps({"code": 2, "msg": "Invalid request"}), set()
    if method != "SUBSCRIBE":
        return orjson.dumps({"result": None, "id": request_id}), set()
    added = {str(p) for p in params if _carried(route, str(p))}
    return orjson.dumps({"result": None, "id": request_id}), added


async def _send(
    ws: web.WebSocketResponse, app: web.Application, streams: set[str], wrapped: bool
) -> None:
    frames = apply(app[SCENARIO], app[SOURCE].frames(streams), streams)
    try:
        async for frame in frames:
            if ws.closed:
                return
            if not wrapped and frame.startswith(b'{"stream"'):
                frame = orjson.dumps(orjson.loads(frame)["data"])
            await ws.send_frame(frame, WSMsgType.TEXT)
    except Disconnect:
        await ws.close(code=1001, message=b"simulated disconnect")
