"""A Binance-futures-shaped feed for the end-to-end bench: real capture diffs (SUSHIUSDT's
chain, looped continuously) served for any symbol at a set rate per connection, or as
fast as the client reads (TCP back-pressure). Runs as its own process:

    python -m bench.feed_server --port 8799 --rate 500 --frames 60000

With `--prerender` (as fast as the client reads only), each symbol's frames are renamed and
framed as WebSocket frames once, at its first connection, and written to the socket in
64 KB chunks: about a tenth of a microsecond a frame, so that the feed takes little of the
cores it shares with the service (bench/workers.py). `POST /reset` forgets which snapshots
were served, so that one feed server serves run after run, each from the chain's start.
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
PRERENDER = web.AppKey("prerender", bool)
RENDERED = web.AppKey("rendered", dict)  # symbol -> its frames as 64 KB chunks of ws frames
BURST_S = 0.005
CHUNK_BYTES = 1 << 16
HIGH_WATER = 1 << 20  # bytes buffered in the transport before the feed waits


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
    if request.app[PRERENDER]:
        return await _send_rendered(request, ws, symbol)
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


async def _send_rendered(
    request: web.Request, ws: web.WebSocketResponse, symbol: str
) -> web.WebSocketResponse:
    rendered = request.app[RENDERED]
    if symbol not in rendered:
        rendered[symbol] = render(request.app[FRAMES], symbol)
    transport, writer = request.transport, request.writer
    assert transport is not None
    transport.set_write_buffer_limits(high=HIGH_WATER)
    try:
        for chunk in rendered[symbol]:
            if transport.is_closing():
                return ws
            transport.write(chunk)  # whole frames: a pong aiohttp writes goes between them
            await writer.drain()  # returns at once unless the transport paused writing
        await ws.receive()  # the chain is used up: stay open, quiet
    except ConnectionError:
        pass
    return ws


def render(frames: list[bytes], symbol: str) -> list[bytes]:
    """`frames` renamed for `symbol`, as unmasked WebSocket text frames, joined into chunks
    of about CHUNK_BYTES (each chunk whole frames)."""
    chunks: list[bytes] = []
    pending: list[bytes] = []
    size = 0
    for frame in frames:
        data = _rename(frame, symbol)
        pending.append(ws_frame(data))
        size += len(data)
        if size >= CHUNK_BYTES:
            chunks.append(b"".join(pending))
            pending, size = [], 0
    if pending:
        chunks.append(b"".join(pending))
    return chunks


def ws_frame(payload: bytes) -> bytes:
    """One final, unmasked text frame (RFC 6455 5.2), as a server sends it."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 1 << 16:
        return bytes((0x81, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + n.to_bytes(8, "big") + payload


async def reset(request: web.Request) -> web.Response:
    request.app[SERVED].clear()
    return web.Response(text="reset\n")


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
    parser.add_argument("--prerender", action="store_true", help="frames written pre-framed")
    parser.add_argument(
        "--symbols", default="", help="with --prerender: render these (comma-separated) first"
    )
    args = parser.parse_args()
    snapshots, frames = looped_depth_frames(args.frames * 4)
    template = [f for f in frames if TEMPLATE.lower().encode() in f[:40]][: args.frames]
    app = web.Application()
    app[FRAMES], app[SNAPSHOT], app[RATE] = template, snapshots[TEMPLATE], args.rate
    app[SERVED], app[PRERENDER], app[RENDERED] = {}, args.prerender, {}
    for symbol in filter(None, args.symbols.split(",")):
        app[RENDERED][symbol.upper()] = render(template, symbol.upper())
    app.router.add_post("/reset", reset)
    app.router.add_get("/fapi/v1/depth", depth)
    app.router.add_get("/public/stream", public_stream)
    app.router.add_get("/market/stream", market_stream)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
