"""A worker process that keeps dying is restarted after a capped, doubling delay, reset once
it has run a while; stop() ends it with SIGTERM."""

from __future__ import annotations

import asyncio
import sys

from marketdata.backoff import Backoff
from marketdata.worker_process import WorkerProcess, WorkerState
from tests.integration.scenario_runner import wait_until


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


async def _run_until(worker: WorkerProcess, restarts: int) -> str | None:
    """Run until `restarts` restarts; the last exit seen then (a process started after it
    is stopped by SIGTERM)."""
    task = asyncio.create_task(worker.run())
    seen: list[str | None] = []

    async def restarted() -> bool:
        seen.append(worker.last_exit)
        return worker.restarts >= restarts

    try:
        assert await wait_until(restarted, 20)
    finally:
        worker.stop()
        await asyncio.wait_for(task, 10)
    return seen[-1]


async def test_restart_delays_double_up_to_the_cap():
    backoff = Backoff(0.01, 0.04, rand=lambda: 1.0)  # no jitter: the ceilings themselves
    worker = WorkerProcess(0, 1, lambda port: _python("raise SystemExit(1)"), backoff=backoff)
    last_exit = await _run_until(worker, 5)
    assert list(worker.delays)[:5] == [0.01, 0.02, 0.04, 0.04, 0.04]
    assert last_exit == "exit code 1"
    assert worker.state is WorkerState.STOPPED


async def test_a_worker_that_ran_a_while_restarts_after_the_initial_delay_again():
    backoff = Backoff(0.01, 1.0, rand=lambda: 1.0)
    worker = WorkerProcess(
        0, 1, lambda port: _python("import time; time.sleep(0.3); raise SystemExit(1)"),
        backoff=backoff, stable_after_s=0.2,
    )  # fmt: skip
    await _run_until(worker, 3)
    assert list(worker.delays)[:3] == [0.01, 0.01, 0.01]


async def test_stop_sends_sigterm_and_returns_the_exit_code(tmp_path):
    armed = tmp_path / "armed"
    code = "import pathlib, signal, sys, time\n" \
        "signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\n" \
        f"pathlib.Path({str(armed)!r}).touch()\n" \
        "time.sleep(30)"  # fmt: skip
    worker = WorkerProcess(0, 1, lambda port: _python(code))
    task = asyncio.create_task(worker.run())

    async def handler_installed() -> bool:
        return armed.exists()

    assert await wait_until(handler_installed, 5)
    worker.stop()
    assert await asyncio.wait_for(task, 10) == 0
    assert worker.restarts == 0
    assert worker.state is WorkerState.STOPPED


async def test_worker_log_lines_are_marked_with_the_worker(capsys):
    code = "import sys\n" \
        "print('2026-01-01 INFO plain line', file=sys.stderr)\n" \
        "print('{\"level\": \"INFO\", \"message\": \"json line\"}', file=sys.stderr)\n" \
        "raise SystemExit(2)"  # fmt: skip
    for log_format, expected in (
        ("text", ["[worker-3] 2026-01-01 INFO plain line",
                  '[worker-3] {"level": "INFO", "message": "json line"}']),
        ("json", ["[worker-3] 2026-01-01 INFO plain line",  # e.g. a traceback
                  '{"level":"INFO","message":"json line","worker":3}']),
    ):  # fmt: skip
        worker = WorkerProcess(3, 4, lambda port: _python(code), log_format)
        assert await asyncio.wait_for(worker.run(), 10) == 2  # a config error: not restarted
        assert worker.state is WorkerState.FAILED
        assert capsys.readouterr().err.splitlines() == expected
