"""`marketdata run --workers N`: N worker processes, one shard each, behind one endpoint.

The supervisor starts `marketdata run --shard K/N` N times (each with its own loopback port
and spill file), restarts a worker that dies (see worker_process), and serves the configured
health_host:health_port with the workers' answers merged (see supervisor_http). On SIGTERM
or SIGINT it sends SIGTERM to every worker and waits up to STOP_TIMEOUT_S for each to
publish what is pending and exit; a worker still running then is killed and the supervisor
exits 1.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiohttp import web

from marketdata import __version__
from marketdata.worker_process import EXIT_CONFIG, Command, WorkerProcess, WorkerState

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 10.0  # a worker needs up to ~3 s to flush, plus closing its sockets


class SupervisorError(Exception):
    """The supervisor cannot start (e.g. its HTTP port is taken)."""


class Supervisor:
    def __init__(
        self,
        count: int,
        command: Callable[[int, int], list[str]],
        host: str,
        port: int,
        log_format: str = "text",
    ) -> None:
        self.host = host
        self.port = port
        self.http_port: int | None = None
        self.workers = [
            WorkerProcess(k, count, _bound(command, k), log_format) for k in range(count)
        ]
        self._stop = asyncio.Event()
        self._failed = asyncio.Event()
        self._failure_code = 0

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> int:
        """Run until stop() (or a worker's configuration error); the exit code."""
        from marketdata.supervisor_http import create_app

        log.info("marketdata %s supervisor: %d workers", __version__, len(self.workers))
        runner = web.AppRunner(create_app(self), access_log=None)
        await runner.setup()
        try:
            await self._listen(runner)
            return await self._supervise()
        finally:
            await runner.cleanup()

    async def _listen(self, runner: web.AppRunner) -> None:
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except OSError as e:
            raise SupervisorError(
                f"cannot listen on {self.host}:{self.port} (health_port): {e.strerror}"
            ) from e
        self.http_port = int(runner.addresses[0][1])
        log.info("operations endpoint on http://%s:%d (/health /ready /metrics: all workers)",
                 self.host, self.http_port)  # fmt: skip

    async def _supervise(self) -> int:
        tasks = {asyncio.create_task(self._watch(w), name=w.name): w for w in self.workers}
        stop = asyncio.create_task(self._stop.wait())
        failed = asyncio.create_task(self._failed.wait())
        await asyncio.wait({stop, failed}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        failed.cancel()
        log.info("stopping %d workers (SIGTERM); waiting up to %.0f s",
                 len(self.workers), STOP_TIMEOUT_S)  # fmt: skip
        for worker in self.workers:
            worker.stop()
        _, pending = await asyncio.wait(tasks, timeout=STOP_TIMEOUT_S)
        for task in pending:
            worker = tasks[task]
            log.error("%s did not stop within %.0f s; killing it", worker.name, STOP_TIMEOUT_S)
            worker.kill()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._failed.is_set():
            return self._failure_code
        if pending:
            return 1
        log.info("all workers stopped")
        return 0

    async def _watch(self, worker: WorkerProcess) -> None:
        """A worker that cannot be (re)started stops the supervisor: EXIT_CONFIG after a
        configuration error, 1 when its process cannot be started at all."""
        try:
            await worker.run()
        except OSError as e:
            log.error("%s: cannot start its process: %s", worker.name, e)
            worker.state = WorkerState.FAILED
            self._failure_code = self._failure_code or 1
            self._failed.set()
            return
        if worker.state is WorkerState.FAILED:
            self._failure_code = EXIT_CONFIG
            self._failed.set()


def _bound(command: Callable[[int, int], list[str]], index: int) -> Command:
    return lambda port: command(index, port)
