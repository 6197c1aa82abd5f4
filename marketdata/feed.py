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
from typing import Literal, NoReturn

import aiohttp
from aiohttp import WSMsgType

from marketdata.backoff import Backoff
from marketdata.cancelling import raise_if_cancelling
from marketdata.connect_pacer import ConnectPacer
from marketdata.logs import describe
from marketdata.outage import Outage

log = logging.getLogger(__name__)

WebSocket = aiohttp.ClientWebSocketResponse[Literal[False]]  # decode_text=False: frames as bytes
FrameHandler = Callable[[bytes, float], None]
StateHandler = Callable[[bool], None]
ErrorHandler = Callable[[str], None]
ConnectFailureHandler = Callable[[str], None]  # called with a short reason label
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


class ConnectionEnded(Exception):
    """The connection is over (closed by the server, silent too long, handover failed)."""


class StaleConnection(ConnectionEnded):
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
        on_connect_failure: ConnectFailureHandler | None = None,
        pacer: ConnectPacer | None = None,
    ) -> None:
        self.name = name
        self.url = url
        self._session = session
        self._on_frame = on_frame
        self._on_state = on_state
        self._on_error = on_error or (lambda reason: None)
        self._on_connect_failure = on_connect_failure or (lambda reason: None)
        self._backoff = backoff
        self._pacer = pacer  # the venue's connection-rate limit, shared by its connections
        self.policy = policy
        self.connected = False
        self.handovers = 0
        self.outage = Outage(name, log)  # why the connection is down, while it is
        self._last_frame_at = 0.0
        self._ws: WebSocket | None = None  # the open connection, for send()

    async def send(self, text: str) -> bool:
        """Send one text frame on the open connection; False when there is none (the next
        connection's on_state(True) is where a venue sends what a new connection needs)."""
        ws = self._ws
        if ws is None or ws.closed:
            return False
        try:
            await ws.send_str(text)
        except (aiohttp.ClientError, ConnectionError) as e:
            log.debug("%s: send failed: %s", self.name, describe(e))
            return False
        return True

    async def run(self) -> None:
        """Keep a connection open until cancelled. An outage (failed connects, or a lost
        connection and its reconnects) is logged when it starts and when it ends."""
        ws: WebSocket | None = None
        while True:
            try:
                if ws is None:
                    ws = await self._connect()
                if ws is not None:
                    ws = await self._pump(ws)
            except (aiohttp.ClientError, OSError, TimeoutError, ConnectionEnded) as e:
                cause = str(e) if isinstance(e, ConnectionEnded) else describe(e)
                self.outage.fail(f"connection lost: {cause}")
                if ws is not None:
                    await ws.close()
                ws = None
                raise_if_cancelling()
            except asyncio.CancelledError:
                if ws is not None:
                    await ws.close()
                raise
            if ws is None:
                self._ws = None
                if self.connected:
                    self.connected = False
                    self._on_state(False)
                await asyncio.sleep(self._backoff.next_delay())

    async def _connect(self) -> WebSocket | None:
        """One connection attempt; None (counted, and the cause kept) when it fails."""
        try:
            ws = await self._open()
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            raise_if_cancelling()
            self._on_connect_failure(connect_failure_reason(e))
            self.outage.fail(f"cannot connect: {describe(e)}")
            return None
        if self.outage.active:
            self.outage.ok()
        else:
            log.info("%s: connected to %s", self.name, self.url)
        self.connected = True
        self._ws = ws
        self._on_state(True)
        return ws

    async def _open(self) -> WebSocket:
        if self._pacer is not None:
            await self._pacer.wait()
        return await self._session.ws_connect(
            self.url,
            autoping=True,
            heartbeat=self.policy.ping_interval_s,
            max_msg_size=self.policy.max_frame_bytes,
            decode_text=False,
        )

    async def _pump(self, ws: WebSocket) -> WebSocket:
        """Hand frames on until the connection is handed over (the successor); raises
        ConnectionEnded (or a client error) when it ends.

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

    async def _read(self, ws: WebSocket) -> NoReturn:
        """Receive until the connection ends, which raises (as does a frame error)."""
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
                raise ConnectionEnded(f"closed by the server (code {ws.close_code})")
            elif message.type is WSMsgType.ERROR:
                self._frame_error(message.data)

    def _frame_error(self, error: BaseException) -> None:
        if isinstance(error, aiohttp.WebSocketError) and error.code == 1009:
            self._on_error("oversize")
            raise aiohttp.ClientError(
                f"frame over {self.policy.max_frame_bytes} bytes; the protocol cannot skip it"
            )
        raise aiohttp.ClientError(f"websocket error: {error}")

    async def _handover(self, old: WebSocket) -> WebSocket:
        """Open a successor, drain the old connection briefly, then switch without a gap."""
        try:
            new = await self._open()
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            await old.close()
            raise ConnectionEnded(f"handover connection failed: {describe(e)}") from None
        held: list[tuple[bytes, float]] = []
        self._ws = new
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
        if new.closed:
            raise ConnectionEnded("the handover connection closed at once")
        return new

    @staticmethod
    async def _hold(ws: WebSocket, held: list[tuple[bytes, float]]) -> None:
        while True:
            message = await ws.receive()
            if message.type not in DATA:
                return
            held.append((message.data, time.time()))


def connect_failure_reason(error: BaseException) -> str:
    """A short, bounded label for ws_connect_failures_total."""
    if isinstance(error, aiohttp.WSServerHandshakeError):
        return f"http_{error.status}"
    if isinstance(error, aiohttp.ClientConnectorDNSError):
        return "dns"
    if isinstance(error, aiohttp.ClientSSLError):
        return "tls"
    if isinstance(error, aiohttp.ClientConnectorError):
        return "refused" if isinstance(error.os_error, ConnectionRefusedError) else "connect"
    if isinstance(error, TimeoutError):
        return "timeout"
    return "error"


def link_problems(
    connection: WebSocketFeed, last_frame_at: float | None, now: float, stale_after_s: float
) -> list[str]:
    """What keeps every symbol of one venue connection from being ready: it is down (with
    its outage's cause), has said nothing yet, or nothing for longer than stale_after_s."""
    if not connection.connected:
        cause = connection.outage.cause
        return [f"disconnected: {cause}" if cause else "disconnected"]
    if last_frame_at is None:
        return ["no message yet"]
    if now - last_frame_at > stale_after_s:
        return [f"no message for {now - last_frame_at:.1f}s"]
    return []
