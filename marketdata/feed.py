"""One WebSocket connection, kept open: connect, hand frames on, reconnect with backoff.

Pings from the server are answered by aiohttp (autoping). Frames are handed on as bytes
with their receive time; what they mean is the adapter's business, not this loop's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import aiohttp

from marketdata.backoff import Backoff

log = logging.getLogger(__name__)

FrameHandler = Callable[[bytes, float], None]
StateHandler = Callable[[bool], None]
MAX_FRAME_BYTES = 4 * 1024 * 1024


class WebSocketFeed:
    def __init__(
        self,
        name: str,
        url: str,
        session: aiohttp.ClientSession,
        on_frame: FrameHandler,
        on_state: StateHandler,
        backoff: Backoff,
    ) -> None:
        self.name = name
        self.url = url
        self._session = session
        self._on_frame = on_frame
        self._on_state = on_state
        self._backoff = backoff
        self.connected = False

    async def run(self) -> None:
        """Keep the connection open until cancelled."""
        while True:
            try:
                await self._connect_once()
            except (aiohttp.ClientError, OSError, TimeoutError) as e:
                log.warning("%s: connection failed: %s", self.name, e or type(e).__name__)
            finally:
                if self.connected:
                    self.connected = False
                    self._on_state(False)
            delay = self._backoff.next_delay()
            log.warning("%s: reconnecting in %.2fs", self.name, delay)
            await asyncio.sleep(delay)

    async def _connect_once(self) -> None:
        async with self._session.ws_connect(
            self.url, autoping=True, max_msg_size=MAX_FRAME_BYTES, decode_text=False
        ) as ws:
            self.connected = True
            log.info("%s: connected to %s", self.name, self.url)
            self._on_state(True)
            on_frame = self._on_frame
            async for message in ws:
                if message.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    if self._backoff.attempt:
                        self._backoff.reset()  # data flows: the next drop starts afresh
                    on_frame(message.data, time.time())
                elif message.type is aiohttp.WSMsgType.ERROR:
                    raise aiohttp.ClientError(f"websocket error: {ws.exception()}")
            log.warning("%s: closed by server (code %s)", self.name, ws.close_code)
