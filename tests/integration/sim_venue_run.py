"""One in-band venue's simulator dialect and a real service reading it, for the venue's
end-to-end tests: start, wait until ready, settle (faults off, markets stopped, every
published book equal to the simulator's), stop."""

from __future__ import annotations

import asyncio
import os
import tempfile
from decimal import Decimal
from typing import Any

from aiohttp import web

from marketdata.config import parse_config
from marketdata.service import Service
from marketdata.sim.app import AnySource, create_sim_app
from marketdata.sim.scenarios import Scenario
from tests.helpers import free_port
from tests.integration.scenario_runner import Collector, get_json, wait_until

Top = list[list[tuple[Decimal, Decimal]]]


class SimVenueRun:
    """`venue` served alone by the simulator at `path`; `section` are the keys every test
    of the venue gives its config section (symbols, depth, timeouts...)."""

    venue: str
    path: str  # the dialect's WebSocket path
    settle_depth = 10  # levels compared when settling (what the venue's checks cover)

    def __init__(
        self,
        source: AnySource,
        scenario: Scenario,
        collector: Collector,
        section: dict[str, Any],
        **app_options: Any,
    ) -> None:
        self.source = source
        self.scenario = scenario
        self.collector = collector
        self.section = section
        self.port = free_port()
        app = create_sim_app({self.venue: source}, scenario, **app_options)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        self.service: Service | None = None
        self.task: asyncio.Task[None] | None = None

    @property
    def symbols(self) -> list[str]:
        return list(self.section["symbols"])

    async def start(
        self, redis_url: str, *, settings: dict[str, Any] | None = None, **section: Any
    ) -> Service:
        """`section`: this venue's keys over the defaults; `settings`: top-level keys."""
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        self.section = {"ws_url": f"ws://127.0.0.1:{self.port}{self.path}", "rest_url":
                        f"http://127.0.0.1:{self.port}", **self.section, **section}  # fmt: skip
        config = parse_config(
            {
                "redis_url": redis_url,
                "health_port": 0,
                "publish_interval_ms": 20,
                "reconnect": {"initial_delay_s": 0.05, "max_delay_s": 0.5},
                "exchanges": {self.venue: self.section},
                "spool": {"spill_path": os.path.join(tempfile.mkdtemp(), "spool.jsonl")},
                **(settings or {}),
            },
            environ={},
        )
        self.service = Service(config)
        self.task = asyncio.create_task(self.service.run())
        return self.service

    async def ready(self, timeout_s: float = 15.0) -> tuple[int, Any]:
        service = self.service
        assert service is not None

        async def is_ready() -> bool:
            if service.http_port is None:
                return False
            status, _ = await get_json(service, "/ready")
            return status == 200

        await wait_until(is_ready, timeout_s)
        return await get_json(service, "/ready")

    async def settle(self) -> bool:
        """No more faults; the markets stop; every symbol's last book is the simulator's."""
        self.scenario.enabled = False
        await asyncio.sleep(0.5)
        self.source.paused = True
        await asyncio.sleep(0.2)
        depth = self.settle_depth

        def caught_up(c: Collector) -> bool:
            return all(self.published_top(s, depth) == self.sim_top(s, depth) for s in self.symbols)

        return await self.collector.collect_until(caught_up, 15.0)

    def published_top(self, symbol: str, depth: int) -> Top | None:
        books = self.collector.messages[f"orderbook:{self.venue}:{symbol}"]
        if not books:
            return None
        return decimal_top(books[-1]["bids"][:depth], books[-1]["asks"][:depth])

    def sim_top(self, symbol: str, depth: int) -> Top:
        return decimal_top(*self.source.markets[symbol].top(depth))

    async def stop(self) -> None:
        if self.service is not None and self.task is not None:
            self.service.stop()
            await self.task
        await self.collector.close()
        await self.source.close()
        await self.runner.cleanup()


def decimal_top(bids: list[list[str]], asks: list[list[str]]) -> Top:
    """Both sides by value: venues print the same price with or without trailing zeros."""
    return [[(Decimal(p), Decimal(q)) for p, q in side] for side in (bids, asks)]
