"""The supervisor's operations endpoint: the workers' endpoints, merged.

GET /health         200 while the supervisor runs, with each worker's state, pid, port,
                    restarts and last exit
GET /ready          200 only when every worker is up and its /ready is 200; else 503 with
                    every worker's problems merged, plus `worker-K` for a worker that is down
GET /metrics        every worker's samples with a `worker="K"` label, plus `workers_up` and
                    `worker_restarts_total`
GET /books/...      forwarded to the worker whose shard holds that symbol

Each worker's own endpoint listens on 127.0.0.1 at the port in /health.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from marketdata import __version__
from marketdata.channels import DEFAULT_EXCHANGE
from marketdata.shard import shard_of
from marketdata.worker_endpoints import (
    fetch,
    gather_metrics,
    gather_ready,
    label_metrics,
    merge_ready,
)
from marketdata.worker_process import WorkerState

if TYPE_CHECKING:
    from marketdata.supervisor import Supervisor

SUPERVISOR: web.AppKey[Supervisor] = web.AppKey("supervisor")
SESSION = web.AppKey("session", aiohttp.ClientSession)
STARTED = web.AppKey("started", float)


def create_app(supervisor: Supervisor) -> web.Application:
    app = web.Application()
    app[SUPERVISOR] = supervisor
    app[STARTED] = time.monotonic()
    app.cleanup_ctx.append(_session)
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/books/{symbol}", book)
    app.router.add_get("/books/{exchange}/{symbol:.+}", book)
    return app


async def _session(app: web.Application) -> AsyncIterator[None]:
    app[SESSION] = aiohttp.ClientSession()
    yield
    await app[SESSION].close()


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _up_ports(supervisor: Supervisor) -> dict[int, int]:
    return {
        w.index: w.port
        for w in supervisor.workers
        if w.state is WorkerState.RUNNING and w.port is not None
    }


async def health(request: web.Request) -> web.Response:
    supervisor = request.app[SUPERVISOR]
    workers = [
        {
            "worker": w.index,
            "state": w.state.value,
            "pid": w.process.pid if w.process is not None else None,
            "port": w.port,
            "restarts": w.restarts,
            "last_exit": w.last_exit or None,
        }
        for w in supervisor.workers
    ]
    uptime = round(time.monotonic() - request.app[STARTED], 3)
    body = {"status": "ok", "version": __version__, "uptime_s": uptime, "workers": workers}
    return _json(body)


async def ready(request: web.Request) -> web.Response:
    supervisor = request.app[SUPERVISOR]
    down = {w.index: r for w in supervisor.workers if (r := w.down_reason()) is not None}
    readies = await gather_ready(request.app[SESSION], _up_ports(supervisor))
    status, body = merge_ready(readies, down)
    return _json(body, status)


async def metrics(request: web.Request) -> web.Response:
    supervisor = request.app[SUPERVISOR]
    texts = await gather_metrics(request.app[SESSION], _up_ports(supervisor))
    body = label_metrics(texts, _own_metrics(supervisor, set(texts)))
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _own_metrics(supervisor: Supervisor, answered: set[int]) -> list[Metric]:
    up = GaugeMetricFamily(
        "workers_up", "1 while the worker runs and its /metrics answers", labels=["worker"]
    )
    restarts = CounterMetricFamily(
        "worker_restarts", "Worker processes restarted after dying", labels=["worker"]
    )
    for worker in supervisor.workers:
        up.add_metric([str(worker.index)], 1.0 if worker.index in answered else 0.0)
        restarts.add_metric([str(worker.index)], float(worker.restarts))
    return [up, restarts]


async def book(request: web.Request) -> web.Response:
    supervisor = request.app[SUPERVISOR]
    exchange = request.match_info.get("exchange", DEFAULT_EXCHANGE)
    symbol = request.match_info["symbol"].upper()
    worker = supervisor.workers[shard_of(exchange, symbol, len(supervisor.workers))]
    if worker.state is not WorkerState.RUNNING or worker.port is None:
        return _json({"error": f"{worker.name}, which serves {exchange}:{symbol}, is down"}, 503)
    try:
        status, body = await fetch(request.app[SESSION], worker.port, request.path_qs)
    except (aiohttp.ClientError, TimeoutError) as e:
        return _json({"error": f"{worker.name} does not answer: {type(e).__name__}"}, 503)
    return web.Response(body=body, status=status, content_type="application/json")
