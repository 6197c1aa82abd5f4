"""Leased `marketdata run` processes, and what Redis itself saw them do (MONITOR)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from tests.helpers import free_port
from tests.integration.conftest import SimServer, write_service_config

EXCHANGE = "binance_futures"
_ARG = re.compile(rb'"((?:[^"\\]|\\.)*)"')
_LINE = re.compile(rb"^\+?(\d+\.\d+) \[\d+ ([^\]]+)\] (.*)$")
WRITES = (b"PUBLISH", b"SET")  # what a lease fences (spool XADDs are history: not fenced)


class Instance:
    """One `python -m marketdata run` process with leases on; its stderr read as it comes."""

    def __init__(self, name: str, process: asyncio.subprocess.Process, port: int) -> None:
        self.name = name
        self.process = process
        self.port = port
        self.lines: list[str] = []
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(
        cls, directory: Path, name: str, redis_url: str, sim: SimServer, symbols: list[str],
        ttl_s: float,
    ) -> Instance:  # fmt: skip
        os.makedirs(directory, exist_ok=True)
        port = free_port()
        config = write_service_config(
            directory, redis_url, sim, symbols, health_port=port, publish_interval_ms=50,
            leases={"enabled": True, "ttl_s": ttl_s, "instance_id": name},
        )  # fmt: skip
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "marketdata.cli", "run", "--config", str(config),
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        return cls(name, process, port)

    async def _read(self) -> None:
        assert self.process.stderr is not None
        while line := await self.process.stderr.readline():
            self.lines.append(line.decode())

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def changes(self, change: str) -> list[str]:
        """The symbols of each `lease <change>:` line logged so far, in order."""
        found = (re.search(rf"lease {change}: {EXCHANGE}:(\S+) token", line) for line in self.lines)
        return [m[1] for m in found if m]

    async def get_json(self, path: str) -> tuple[int, Any]:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{self.port}{path}") as response:
                return response.status, await response.json()

    async def get_text(self, path: str) -> str:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{self.port}{path}") as response:
                return await response.text()

    async def ready(self) -> bool:
        try:
            return (await self.get_json("/ready"))[0] == 200
        except aiohttp.ClientError:
            return False

    def signal(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)

    async def stop(self, timeout_s: float = 15.0) -> int:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGCONT)  # a stopped process cannot stop
            self.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.process.wait(), timeout_s)
        await self._reader
        return code


async def owners(client: aioredis.Redis, symbols: list[str]) -> dict[str, str]:
    """symbol -> the instance whose lease it is (absent: nobody's)."""
    values = await client.mget([f"lease:{{{EXCHANGE}:{s}}}" for s in symbols])
    found = zip(symbols, values, strict=True)
    return {s: v.decode().rsplit(":", 1)[0] for s, v in found if v is not None}


def symbol_of(command: list[bytes]) -> str | None:
    """The symbol a PUBLISH/SET writes for (by its channel or key)."""
    if command[0] in (b"PUBLISH", b"SET"):
        return command[1].decode().rsplit(":", 1)[-1]
    return None


@dataclass
class Executed:
    """A write Redis ran, and who sent it."""

    at: float  # Redis's clock (time.time() on this host)
    client: str  # ip:port of the connection, "lua" for a command a script ran
    value: str | None  # the lease value of the EVALSHA that ran it (None: not a script's)
    command: list[bytes]
    lease: str | None = None  # the lease key that EVALSHA checked

    @property
    def under(self) -> tuple[str | None, str | None]:
        """(lease key, value): one acquisition of one lease."""
        return self.lease, self.value

    @property
    def instance(self) -> str | None:
        return None if self.value is None else self.value.rsplit(":", 1)[0]


class Monitor:
    """Redis MONITOR on a connection of its own: every write Redis executed, attributed to
    the fenced call (and so the instance and token) that ran it."""

    def __init__(self, redis_url: str) -> None:
        host, port = re.findall(r"//([^:/]+):(\d+)", redis_url)[0]
        self._address = (host, int(port))
        self.writes: list[Executed] = []
        self.calls: list[Executed] = []  # every EVALSHA/EVAL of the fence script
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        reader, writer = await asyncio.open_connection(*self._address, limit=2**24)
        writer.write(b"MONITOR\r\n")
        await writer.drain()
        assert await reader.readline() == b"+OK\r\n"
        self._writer = writer
        self._task = asyncio.create_task(self._read(reader))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        value: str | None = None
        lease: str | None = None
        while line := await reader.readline():
            match = _LINE.match(line.rstrip(b"\r\n"))
            if match is None:
                continue
            at, client = float(match[1]), match[2].decode()
            args = [_unescape(a) for a in _ARG.findall(match[3])]
            name = args[0].upper() if args else b""
            if client != "lua":
                value = lease = None
                if name in (b"EVALSHA", b"EVAL") and len(args) > 5 and args[5] in WRITES:
                    value, lease = args[4].decode(), args[3].decode()
                    self.calls.append(Executed(at, client, value, args[5:], lease))
                    continue
            if name in WRITES:
                ours = client == "lua"  # run by the last script call
                command = [name, *args[1:]]
                self.writes.append(
                    Executed(at, client, value if ours else None, command, lease if ours else None)
                )

    def since(self, start: float, test: Callable[[Executed], bool]) -> list[Executed]:
        return [w for w in self.writes if w.at >= start and test(w)]

    async def close(self) -> None:
        if self._task is not None:
            self._writer.close()
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def _unescape(arg: bytes) -> bytes:
    return re.sub(rb"\\(.)", lambda m: m[1], arg)


def now() -> float:
    return time.time()
