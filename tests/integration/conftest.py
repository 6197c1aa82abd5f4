"""Real servers for integration tests, started once per session on free ports."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
import yaml
from aiohttp import web

from marketdata.config import Config, parse_config
from marketdata.sim.scenarios import Scenario
from marketdata.sim.server import create_app
from marketdata.sim.sources import GeneratedSource, Source
from tests.helpers import free_port
from tests.postgres_server import PostgresServer
from tests.redis_server import RedisServer


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed (apt-get install redis-server)")
    server = RedisServer(str(tmp_path_factory.mktemp("redis")))
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    """A client to a clean database; the server is restarted if a test stopped it."""
    if redis_server.process is None or redis_server.process.poll() is not None:
        redis_server.start()
    client = aioredis.Redis.from_url(redis_server.url)
    await client.flushall()
    yield client
    await client.aclose()


class SimServer:
    """The simulator's app served on a free loopback port inside the test's event loop."""

    def __init__(
        self, source: Source, ping_interval_s: float = 180.0, scenario: Scenario | None = None
    ) -> None:
        self.source = source
        self.scenario = scenario or Scenario()
        self.port = free_port()
        self.url_ws = f"ws://127.0.0.1:{self.port}"
        self.url_http = f"http://127.0.0.1:{self.port}"
        app = create_app(source, ping_interval_s, self.scenario)
        self._runner = web.AppRunner(app, access_log=None)

    async def start(self) -> None:
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if isinstance(self.source, GeneratedSource):
            await self.source.close()
        await self._runner.cleanup()


@pytest.fixture
async def start_sim() -> AsyncIterator[Callable[..., Awaitable[SimServer]]]:
    servers: list[SimServer] = []

    async def start(
        source: Source, ping_interval_s: float = 180.0, scenario: Scenario | None = None
    ) -> SimServer:
        server = SimServer(source, ping_interval_s, scenario)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


def service_config(
    redis_url: str,
    sim: SimServer,
    symbols: list[str],
    exchange_options: dict[str, Any] | None = None,
    **overrides: Any,
) -> Config:
    raw: dict[str, Any] = {
        "redis_url": redis_url,
        "health_port": 0,  # a free port: `make demo` may hold 9090 while the tests run
        "publish_interval_ms": 50,
        "reconnect": {"initial_delay_s": 0.05, "max_delay_s": 0.5},
        "exchanges": {
            "binance_futures": {
                "symbols": symbols,
                "ws_url": sim.url_ws,
                "rest_url": sim.url_http,
                "snapshot_limit": 1000,
                **(exchange_options or {}),
            }
        },
    }
    raw.update(overrides)
    # Never the default under ./.run: a spill left by one test would be restored by the next.
    spool = raw["spool"] = dict(raw.get("spool", {}))
    spool.setdefault("spill_path", os.path.join(tempfile.mkdtemp(prefix="spill-"), "spool.jsonl"))
    return parse_config(raw, environ={})


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    server.start()
    yield server
    server.destroy()


@pytest.fixture
async def pg(postgres_server: PostgresServer) -> AsyncIterator[PostgresServer]:
    """The server, running, with no marketdata tables left from an earlier test."""
    if postgres_server.process is None:
        postgres_server.start()
    conn = await asyncpg.connect(postgres_server.dsn)
    await conn.execute("DROP TABLE IF EXISTS trades, l2_snapshots")
    await conn.close()
    return postgres_server


def write_service_config(
    directory: Path, redis_url: str, sim: SimServer, symbols: list[str], **overrides: Any
) -> Path:
    """A config file for a real `marketdata run` process: its spill file in `directory`,
    never the repository's .run/spill (which holds a developer's own data)."""
    raw: dict[str, Any] = {
        "redis_url": redis_url,
        "spool": {"spill_path": str(directory / "spill.jsonl")},
        "health_port": 0,
        "exchanges": {"binance_futures": {
            "symbols": symbols, "ws_url": sim.url_ws, "rest_url": sim.url_http,
        }},
    }  # fmt: skip
    raw.update(overrides)
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path
