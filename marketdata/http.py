"""Operations HTTP endpoint (aiohttp, embedded with AppRunner).

GET /health         alive: version and uptime
GET /ready          200 only when the publisher's own connection reaches Redis and Redis
                    accepts every command (see Publisher.redis_problems), and every
                    symbol's book is synced and has had a message within stale_after_s;
                    else 503 listing the reasons. With leases: the symbols this instance
                    holds (none is fine), and the lease rounds succeed ("leases" lists
                    instance_id, owned, instances, fair_share)
GET /metrics        Prometheus text
GET /books/{symbol} current top-N book as JSON (also /books/{exchange}/{symbol})

The endpoint shares the feed's event loop, so a flood of requests must not take it over:
handlers (all but /health, which does nothing) start at most MAX_RATE a second and run at
most HANDLERS_AT_ONCE at once; a request whose turn is more than MAX_WAIT_S away is answered
at once with 503 {"busy": true}: the endpoint is busy, which says nothing about readiness.
/ready has a budget of its own, of the same size, untouched by the other paths.
/metrics renders the exposition at most once per METRICS_MAX_AGE_S and serves those bytes
meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from marketdata import __version__
from marketdata.channels import DEFAULT_EXCHANGE
from marketdata.http_limits import HandlerGate, MetricsCache

if TYPE_CHECKING:
    from marketdata.service import Service

HANDLERS_AT_ONCE = 4
# 200/s is far above scrapes and probes, and keeps the endpoint to a few per cent of the loop
# (a request costs about 0.3 ms of it): unpaced, a flood took it all and trades waited.
MAX_RATE = 200.0
MAX_WAIT_S = 1.0
METRICS_MAX_AGE_S = 1.0
UNBOUNDED_PATHS = frozenset({"/health"})
# Readiness probes have a budget of their own, so a flood of /metrics or /books requests
# never makes /ready answer "busy" (which a probe cannot tell from "not ready").
READY_PATH = "/ready"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SERVICE: web.AppKey[Service] = web.AppKey("service")
STARTED = web.AppKey("started", float)
GATE = web.AppKey("gate", HandlerGate)
READY_GATE = web.AppKey("ready_gate", HandlerGate)
METRICS = web.AppKey("metrics", MetricsCache)


def create_app(service: Service) -> web.Application:
    app = web.Application(middlewares=[bounded])
    app[SERVICE] = service
    app[STARTED] = time.monotonic()
    app[GATE] = HandlerGate(HANDLERS_AT_ONCE, MAX_RATE, MAX_WAIT_S)
    app[READY_GATE] = HandlerGate(HANDLERS_AT_ONCE, MAX_RATE, MAX_WAIT_S)

    def render() -> bytes:
        service.update_gauges()
        return generate_latest(service.metrics.registry)

    app[METRICS] = MetricsCache(render, METRICS_MAX_AGE_S)
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/books/{symbol}", book)
    app.router.add_get("/books/{exchange}/{symbol:.+}", book)  # Kraken's BTC/USD
    return app


@web.middleware
async def bounded(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in UNBOUNDED_PATHS:
        return await handler(request)
    gate = request.app[READY_GATE if request.path == READY_PATH else GATE]
    if not await gate.acquire():
        response = _json({"busy": True, "error": "operations endpoint busy; retry"}, 503)
        response.headers["Retry-After"] = "1"
        return response
    try:
        return await handler(request)
    finally:
        gate.release()


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
    problems.update(service.feed_problems(time.monotonic()))
    body: dict[str, Any] = {
        "ready": not problems,
        "problems": problems,
        "symbols": service.symbol_count,
    }
    if service.leases is not None:
        body["leases"] = service.leases.describe()
    return _json(body, 200 if not problems else 503)


async def metrics(request: web.Request) -> web.Response:
    return web.Response(
        body=request.app[METRICS].body(),
        headers={"Content-Type": CONTENT_TYPE_LATEST},
    )


async def book(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    exchange = request.match_info.get("exchange", DEFAULT_EXCHANGE)
    symbol = request.match_info["symbol"].upper()
    state = service.state_for(exchange, symbol)
    if state is None:
        return _json({"error": f"unknown symbol {exchange}:{symbol}"}, 404)
    body = state.render_orderbook(service.config.book_depth)
    if body is None:
        return _json({"error": f"{exchange}:{symbol} is not synced"}, 503)
    return web.Response(body=body, content_type="application/json")
