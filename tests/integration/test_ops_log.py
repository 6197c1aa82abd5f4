"""A local client's malformed request is one log line, not a traceback wall."""

from __future__ import annotations

import asyncio
import signal
import sys

import aiohttp

from marketdata.sim.sources import GeneratedSource
from tests.helpers import free_port
from tests.integration.conftest import write_service_config
from tests.integration.test_ops_load import wait_ready

BIG = 100_000


async def send_raw(port: int, request: bytes) -> bytes:
    """Send bytes as they are and read the answer until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return answer


async def test_overlong_url_and_header_log_one_line_each(
    redis_server, redis_client, start_sim, tmp_path
):
    sim = await start_sim(GeneratedSource(rate=10, seed=1))
    port = free_port()
    config = write_service_config(tmp_path, redis_server.url, sim, ["BTCUSDT"], health_port=port)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "marketdata.cli", "run", "--config", str(config),
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with aiohttp.ClientSession() as session:
            await wait_ready(session, f"http://127.0.0.1:{port}", 30)
        long_url = await send_raw(port, b"GET /" + b"a" * BIG + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        long_header = await send_raw(
            port, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * BIG + b"\r\n\r\n"
        )
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 20)
    log = stderr.decode()
    assert long_url.startswith((b"HTTP/1.0 400", b"HTTP/1.1 400"))
    assert long_header.startswith((b"HTTP/1.0 400", b"HTTP/1.1 400"))
    assert "Traceback" not in log
    lines = log.splitlines()
    bad = [line for line in lines if "bad HTTP request" in line]
    assert len(bad) == 2, log[-3000:]
    assert all(len(line) < 500 for line in lines), max(map(len, lines))
