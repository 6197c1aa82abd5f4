"""A Binance-futures-shaped feed for the end-to-end bench: real capture diffs (SUSHIUSDT's
chain, looped continuously) served for any symbol at a set rate per connection, or as
fast as the client reads (TCP back-pressure). Runs as its own process:

    python -m bench.feed_server --port 8799 --rate 500 --frames 60000
"""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import WSMsgType, web

from bench.frames import looped_depth_frames

TEMPLATE = "SUSHIUSDT"
FRAMES = web.AppKey("frames", list)
SNAPSHOT = web.AppKey("snapshot", bytes)
RATE = web.AppKey("rate", float)
SERVED = web.AppKey("served", dict)  # symbol -> Event set once its snapshot went out
BURST_S = 0.005


def _rename(data: bytes, symbol: str) -> bytes:
    return data.replace(TEMPLATE.encode(), symbol.encode()).replace(
        TEMPLATE.lower().encode(), symbol.lower().encode()
    )


async def depth(request: web.Request) -> web.Response:
    symbol = request.query.get("symbol", TEMPLATE).upper()
    response = web.Response(
        body=_rename(request.app[SNAPSHOT], symbol), content_type="application/json"
    )
    _served(request.app, symbol).set()
    return response


def _served(app: web.Application, symbol: str) -> asyncio.Event:
    return app[SERVED].setdefault(symbol, asyncio.Event())


async def public_stream(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(autoping=True)
    await ws.prepare(request)
    symbol = request.query.get("streams", "").split("@", 1)[0].upper()
    frames, rate = request.app[FRAMES], request.app[RATE]
    # The recorded snapshot is fixed, so the chain must not run ahead of it: start once the
    # client has it (a live exchange would serve a fresh one instead).
    await _served(request.app, symbol).wait()
    loop = asyncio.get_running_loop()
    started, sent = loop.time(), 0
    try:
        for frame in frames:
            await ws.send_frame(_rename(frame, symbol), WSMsgType.TEXT)
            sent += 1
            if rate > 0 and sent % max(1, int(rate * BURST_S)) == 0:
                ahead = started + sent / rate - loop.time()
                if ahead > 0:
                    await asyncio.sleep(ahead)
            elif rate <= 0 and sent % 256 == 0:
                await asyncio.sleep(0)  # let other connections in
        await ws.receive()  # the chain is used up: stay open, quiet
    except ConnectionError:
        pass
    return ws


async def market_stream(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(autoping=True)
    await ws.prepare(request)
    await ws.receive()
    return ws


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=float, default=0.0, help="frames/s per connection; 0: max")
    parser.add_argument("--frames", type=int, default=60_000)
    args = parser.parse_args()
    snapshots, frames = looped_depth_frames(args.frames * 4)
    template = [f for f in frames if TEMPLATE.lower().encode() in f[:40]][: args.frames]
    app = web.Application()
    app[FRAMES], app[SNAPSHOT], app[RATE] = template, snapshots[TEMPLATE], args.rate
    app[SERVED] = {}
    app.router.add_get("/fapi/v1/depth", depth)
    app.router.add_get("/public/stream", public_stream)
    app.router.add_get("/market/stream", market_stream)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
