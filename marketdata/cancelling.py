"""Keep a cancellation from being lost inside a loop that retries on I/O errors."""

from __future__ import annotations

import asyncio


def raise_if_cancelling() -> None:
    """Raise CancelledError if the current task has been asked to stop.

    A cancellation that lands inside a client library's call can come out as that
    library's own error (a timeout racing the cancel, say), and a loop that retries on
    such errors would then outlive its cancel. Retry loops call this wherever they catch
    such an error. (Loops that must end at shutdown also check their stop flag: a cancel
    can be lost without any error at all, as persist's housekeeping showed.)
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
