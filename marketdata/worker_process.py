"""One worker: a `marketdata run --shard K/N` child process, restarted when it dies.

Each start gets a free loopback port for the worker's own endpoint. A death is logged once
(exit code or signal) and the worker restarted after a capped exponential backoff with
jitter, reset once a worker has run STABLE_AFTER_S; it is logged once more when the new
process's endpoint answers. A worker that exits EXIT_CONFIG (a configuration error, e.g. a
symbol the venue does not list) is not restarted: the same config would fail again.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
from collections import deque
from collections.abc import Callable
from enum import StrEnum

import aiohttp
import orjson

from marketdata.backoff import Backoff
from marketdata.waits import wait_event

log = logging.getLogger(__name__)

EXIT_CONFIG = 2
BACKOFF_INITIAL_S = 0.5
BACKOFF_CAP_S = 30.0
STABLE_AFTER_S = 60.0
PROBE_INTERVAL_S = 0.1

# (port) -> argv of the child
Command = Callable[[int], list[str]]


class WorkerState(StrEnum):
    STARTING = "starting"  # process started, endpoint not answering yet
    RUNNING = "running"
    RESTARTING = "restarting"  # died; waiting out the backoff
    FAILED = "failed"  # configuration error: not restarted
    STOPPING = "stopping"
    STOPPED = "stopped"


def free_port() -> int:
    """A port free right now (another process may take it before the worker binds it: the
    worker then exits 1 and its restart picks another)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class WorkerProcess:
    def __init__(
        self,
        index: int,
        count: int,
        command: Command,
        log_format: str = "text",
        backoff: Backoff | None = None,
        stable_after_s: float = STABLE_AFTER_S,
    ) -> None:
        self.index = index
        self.count = count
        self._command = command
        self._log_format = log_format
        self.state = WorkerState.STARTING
        self.process: asyncio.subprocess.Process | None = None
        self.port: int | None = None
        self.restarts = 0
        self.last_exit = ""
        self.restart_at = 0.0  # loop time of the next start while RESTARTING
        self._backoff = backoff or Backoff(BACKOFF_INITIAL_S, BACKOFF_CAP_S)
        self._stable_after_s = stable_after_s
        self.delays: deque[float] = deque(maxlen=16)  # the latest restart delays
        self._stopping = asyncio.Event()

    @property
    def name(self) -> str:
        return f"worker-{self.index}"

    def down_reason(self) -> str | None:
        """Why this worker cannot be asked for /ready; None when it can."""
        if self.state is WorkerState.RUNNING:
            return None
        if self.state is WorkerState.RESTARTING:
            due = max(0.0, self.restart_at - asyncio.get_running_loop().time())
            return f"down ({self.last_exit}); restart {self.restarts} in {due:.1f} s"
        if self.state is WorkerState.STARTING:
            pid = self.process.pid if self.process else "-"
            return f"starting (pid {pid}); its endpoint does not answer yet"
        return f"{self.state.value} ({self.last_exit})" if self.last_exit else self.state.value

    async def run(self) -> int:
        """Start, watch, restart until stop(); the last process's exit code."""
        loop = asyncio.get_running_loop()
        while True:
            self.port = free_port()
            self.state = WorkerState.STARTING
            self.process = process = await asyncio.create_subprocess_exec(
                *self._command(self.port), stderr=asyncio.subprocess.PIPE
            )
            if self._stopping.is_set():
                process.terminate()
            started = loop.time()
            relay = asyncio.create_task(self._relay(process))
            probe = asyncio.create_task(self._probe(process, self.port))
            code = await process.wait()
            probe.cancel()
            await asyncio.gather(relay, probe, return_exceptions=True)
            self.last_exit = describe_exit(code)
            if self._stopping.is_set():
                self.state = WorkerState.STOPPED
                log.info("%s (pid %d) stopped: %s", self.name, process.pid, self.last_exit)
                return code
            if code == EXIT_CONFIG:
                self.state = WorkerState.FAILED
                log.error("%s (pid %d): configuration error (%s); not restarting",
                          self.name, process.pid, self.last_exit)  # fmt: skip
                return code
            ran = loop.time() - started
            if ran >= self._stable_after_s:
                self._backoff.reset()
            delay = self._backoff.next_delay()
            self.delays.append(delay)
            self.restarts += 1
            self.restart_at = loop.time() + delay
            self.state = WorkerState.RESTARTING
            log.warning("%s (pid %d, shard %d/%d) died after %.1f s: %s; restarting in %.2f s",
                        self.name, process.pid, self.index, self.count, ran, self.last_exit,
                        delay)  # fmt: skip
            await wait_event(self._stopping, delay)
            if self._stopping.is_set():
                self.state = WorkerState.STOPPED
                return code

    def stop(self) -> None:
        """Ask the process to shut down (SIGTERM: it publishes what is pending first)."""
        self._stopping.set()
        if self.state is not WorkerState.STOPPED:
            self.state = WorkerState.STOPPING
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()

    def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()

    async def _probe(self, process: asyncio.subprocess.Process, port: int) -> None:
        """Mark the worker RUNNING once its endpoint answers /health."""
        url = f"http://127.0.0.1:{port}/health"
        timeout = aiohttp.ClientTimeout(total=1.0)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while process.returncode is None:
                try:
                    async with session.get(url) as response:
                        if response.status == 200:
                            break
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(PROBE_INTERVAL_S)
            else:
                return
        if self._stopping.is_set():
            return
        self.state = WorkerState.RUNNING
        if self.restarts:
            log.info("%s is back: pid %d on 127.0.0.1:%d (restart %d)",
                     self.name, process.pid, port, self.restarts)  # fmt: skip
        else:
            log.info("%s up: pid %d, shard %d/%d, endpoint 127.0.0.1:%d",
                     self.name, process.pid, self.index, self.count, port)  # fmt: skip

    async def _relay(self, process: asyncio.subprocess.Process) -> None:
        """The worker's log lines on our stderr, each marked with the worker."""
        assert process.stderr is not None
        while True:
            try:
                line = await process.stderr.readline()
            except ValueError:  # over the reader's 64 KiB limit: dropped up to its newline
                line = b"(a log line over 64 KiB left out)\n"
            if not line:
                return
            sys.stderr.write(self._mark(line.decode(errors="replace").rstrip("\n")) + "\n")
            sys.stderr.flush()

    def _mark(self, line: str) -> str:
        if self._log_format == "json" and line.startswith("{"):
            try:
                entry = orjson.loads(line)
            except orjson.JSONDecodeError:
                return line
            if isinstance(entry, dict):
                return orjson.dumps({**entry, "worker": self.index}).decode()
            return line
        return f"[{self.name}] {line}"
