"""One WebSocket connection, kept open: connect, hand frames on, reconnect with backoff.

- Server pings are answered by aiohttp (autoping); our own pings every `ping_interval_s`
  detect a dead TCP connection on a quiet stream.
- Watchdog: no frame for `stale_after_s` (when set) -> reconnect.
- Handover: before `max_age_s` (the exchange's 24 h limit) a successor connection is
  opened; its frames are held while the old one drains for `handover_grace_s`, then
  handed on in order. Consumers drop what they already have by id, so nothing is lost,
  nothing doubled, and the connection never reports itself down.
Frames are handed on as bytes with their receive time; their meaning is not this loop's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
from aiohttp import WSMsgType

from marketdata.backoff import Backoff
from marketdata.cancelling import raise_if_cancelling

log = logging.getLogger(__name__)

FrameHandler = Callable[[bytes, float], None]
StateHandler = Callable[[bool], None]
ErrorHandler = Callable[[str], None]
MAX_FRAME_BYTES = 4 * 1024 * 1024
# receive() returns without suspending while frames are buffered, so a busy socket would
# keep the loop from the publisher: yield once every this many frames.
FRAMES_PER_YIELD = 64
DATA = (WSMsgType.TEXT, WSMsgType.BINARY)
ENDED = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED)


@dataclass(frozen=True, slots=True)
class ConnectionPolicy:
    stale_after_s: float | None = None  # watchdog; None: rely on pings alone
    ping_interval_s: float = 30.0
    max_age_s: float = 23 * 3600.0
    handover_grace_s: float = 1.0
    max_frame_bytes: int = MAX_FRAME_BYTES


class StaleConnection(Exception):
    pass


class WebSocketFeed:
    def __init__(
        self,
        name: str,
        url: str,
        session: aiohttp.ClientSession,
        on_frame: FrameHandler,
        on_state: StateHandler,
        backoff: Backoff,
        policy: ConnectionPolicy = ConnectionPolicy(),
        on_error: ErrorHandler | None = None,
    ) -> None:
        self.name = name
        self.url = url
        self._session = session
        self._on_frame = on_frame
        self._on_state = on_state
        self._on_error = on_error or (lambda reason: None)
        self._backoff = backoff
        self.policy = policy
        self.connected = False
        self.handovers = 0
        self._last_frame_at = 0.0

    async def run(self) -> None:
        """Keep a connection open until cancelled."""
        ws: aiohttp.ClientWebSocketResponse | None = None
        while True:
            try:
                if ws is None:
                    ws = await self._open()
                    self.connected = True
                    log.info("%s: connected to %s", self.name, self.url)
                    self._on_state(True)
                ws = await self._pump(ws)
            except (aiohttp.ClientError, OSError, TimeoutError, StaleConnection) as e:
                log.warning("%s: connection lost: %s", self.name, e or type(e).__name__)
                if ws is not None:
                    await ws.close()
                ws = None
                raise_if_cancelling()
            except asyncio.CancelledError:
                if ws is not None:
                    await ws.close()
                raise
            if ws is None:
                if self.connected:
                    self.connected = False
                    self._on_state(False)
                delay = self._backoff.next_delay()
                log.warning("%s: reconnecting in %.2fs", self.name, delay)
                await asyncio.sleep(delay)

    async def _open(self) -> aiohttp.ClientWebSocketResponse:
        return await self._session.ws_connect(
            self.url,
            autoping=True,
            heartbeat=self.policy.ping_interval_s,
            max_msg_size=self.policy.max_frame_bytes,
            decode_text=False,
        )

    async def _pump(
        self, ws: aiohttp.ClientWebSocketResponse
    ) -> aiohttp.ClientWebSocketResponse | None:
        """Hand frames on until the connection ends (None) or is handed over (successor).

        The reader runs receive() without a timeout: a per-frame timeout costs an asyncio
        Timeout per frame, most of the receive loop at high rates. This supervisor wakes
        only when the watchdog or the handover could be due.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.policy.max_age_s
        stale = self.policy.stale_after_s
        self._last_frame_at = loop.time()
        reader = asyncio.create_task(self._read(ws), name=f"{self.name}:read")
        try:
            while True:
                now = loop.time()
                if now >= deadline:
                    break
                wake = deadline
                if stale is not None:
                    if now - self._last_frame_at >= stale:
                        self._on_error("stale_connection")
                        raise StaleConnection(f"no frame for {stale:g}s")
                    wake = min(wake, self._last_frame_at + stale)
                done, _ = await asyncio.wait((reader,), timeout=wake - now)
                if done:
                    return reader.result()
        finally:
            if not reader.done():
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
        return await self._handover(ws)

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Receive until the connection ends; a frame error raises."""
        on_frame = self._on_frame
        clock = time.monotonic  # the loop's clock, read without a method lookup per frame
        frames = 0
        while True:
            message = await ws.receive()
            if message.type in DATA:
                if self._backoff.attempt:
                    self._backoff.reset()  # data flows: the next drop starts afresh
                self._last_frame_at = clock()
                on_frame(message.data, time.time())
                frames += 1
                if frames % FRAMES_PER_YIELD == 0:
                    await asyncio.sleep(0)
            elif message.type in ENDED:
                log.warning("%s: closed by server (code %s)", self.name, ws.close_code)
                return
            elif message.type is WSMsgType.ERROR:
                self._frame_error(message.data)

    def _frame_error(self, error: BaseException) -> None:
        if isinstance(error, aiohttp.WebSocketError) and error.code == 1009:
            self._on_error("oversize")
            raise aiohttp.ClientError(
                f"frame over {self.policy.max_frame_bytes} bytes; the protocol cannot skip it"
            )
        raise aiohttp.ClientError(f"websocket error: {error}")

    async def _handover(
        self, old: aiohttp.ClientWebSocketResponse
    ) -> aiohttp.ClientWebSocketResponse | None:
        """Open a successor, drain the old connection briefly, then switch without a gap."""
        try:
            new = await self._open()
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            log.warning("%s: handover connection failed (%s); reconnecting", self.name, e)
            await old.close()
            return None
        held: list[tuple[bytes, float]] = []
        collector = asyncio.create_task(self._hold(new, held))
        loop = asyncio.get_running_loop()
        end = loop.time() + self.policy.handover_grace_s
        try:
            while (remaining := end - loop.time()) > 0:
                try:
                    message = await old.receive(timeout=remaining)
                except TimeoutError:
                    break
                if message.type not in DATA:
                    break
                self._on_frame(message.data, time.time())
        finally:
            await old.close()
            collector.cancel()
            await asyncio.gather(collector, return_exceptions=True)
        for frame, recv_ts in held:
            self._on_frame(frame, recv_ts)
        self.handovers += 1
        log.info("%s: handed over to a new connection (%d frames held)", self.name, len(held))
        return None if new.closed else new

    @staticmethod
    async def _hold(ws: aiohttp.ClientWebSocketResponse, held: list[tuple[bytes, float]]) -> None:
        while True:
            message = await ws.receive()
            if message.type not in DATA:
                return
            held.append((message.data, time.time()))
