"""Read an HTTP response body no larger than a limit, refusing it as soon as it passes it."""

from __future__ import annotations

import aiohttp

# A 1000-level Binance snapshot is about 60 KB: 2 MiB is some thirty times that. A body past
# the limit is refused as it arrives, never read whole (one of 64 MB once was).
DEFAULT_MAX_SNAPSHOT_BYTES = 2 * 1024 * 1024
# A page of 1000 aggTrades is about 100 KB: the same 2 MiB is some twenty times that.
DEFAULT_MAX_PAGE_BYTES = 2 * 1024 * 1024
CHUNK_BYTES = 64 * 1024


class BodyTooLarge(Exception):
    """The response body passed the size limit."""


async def read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body, read as it arrives; BodyTooLarge as soon as it passes `limit` bytes."""
    declared = response.content_length  # on the wire: compressed, if it is
    if declared is not None and declared > limit:
        raise BodyTooLarge(f"Content-Length {declared} is over the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(CHUNK_BYTES):
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
