"""Operations HTTP endpoint (aiohttp, embedded with AppRunner).

GET /health         alive: version and uptime
GET /ready          200 only when the publisher's own connection reaches Redis and Redis
                    accepts every command (see Publisher.redis_problems), and every
                    symbol's book is synced and has had a message within stale_after_s;
                    else 503 listing the reasons
GET /metrics        Prometheus text
GET /books/{symbol} current top-N book as JSON (also /books/{exchange}/{symbol})
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from marketdata import __version__
from marketdata.channels import DEFAULT_EXCHANGE

if TYPE_CHECKING:
    from marketdata.service import Service

SERVICE: web.AppKey[Service] = web.AppKey("service")
STARTED = web.AppKey("started", float)


def create_app(service: Service) -> web.Application:
    app = web.Application()
    app[SERVICE] = service
    app[STARTED] = time.monotonic()
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/books/{symbol}", book)
    app.router.add_get("/books/{exchange}/{symbol}", book)
    return app


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


async def health(request: web.Request) -> web.Response:
    uptime = time.monotonic() - request.app[STARTED]
    return _json({"status": "ok", "version": __version__, "uptime_s": round(uptime, 3)})


async def ready(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    problems: dict[str, list[str]] = {}
    redis_problems = service.publisher.redis_problems()
    if redis_problems:
        problems["redis"] = redis_problems
    stale_after = service.config.stale_after_s
    now = time.monotonic()
    for feed in service.feeds:
        reasons = feed.readiness_problems(now, stale_after)
        if reasons:
            problems[feed.key] = reasons
    body = {"ready": not problems, "problems": problems, "symbols": len(service.feeds)}
    return _json(body, 200 if not problems else 503)


async def metrics(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    service.update_gauges()
    return web.Response(
        body=generate_latest(service.metrics.registry),
        headers={"Content-Type": CONTENT_TYPE_LATEST},
    )


async def book(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    exchange = request.match_info.get("exchange", DEFAULT_EXCHANGE)
    symbol = request.match_info["symbol"].upper()
    feed = service.feed_for(exchange, symbol)
    if feed is None:
        return _json({"error": f"unknown symbol {exchange}:{symbol}"}, 404)
    body = feed.state.render_orderbook(service.config.book_depth)
    if body is None:
        return _json({"error": f"{exchange}:{symbol} is not synced"}, 503)
    return web.Response(body=body, content_type="application/json")
