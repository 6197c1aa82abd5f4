"""The spool's XREADGROUP and XAUTOCLAIM replies, typed as the persist client receives them.

redis-py types these replies for every protocol and decoding at once (a union of list and
dict shapes, or list[Any]). The persist client never decodes responses and gets the list
shape, so this module states that shape once for the type checker; no per-entry cost.
"""

from __future__ import annotations

from typing import Any, cast

from marketdata.persist.rows import Entry

StreamEntries = list[tuple[bytes, list[Entry]]]  # per stream read: its name, its entries


def read_entries(reply: object) -> StreamEntries:
    """XREADGROUP's reply: [[stream, [(id, fields), ...]], ...]; [] when nothing came."""
    return cast(StreamEntries, reply or [])


def claimed_entries(reply: list[Any]) -> tuple[bytes, list[Entry]]:
    """XAUTOCLAIM's reply: the next cursor and the entries claimed, less any deleted since
    they were delivered (Redis 6.2 lists those as (None, None); 7.0 reports them apart)."""
    cursor, claimed, _deleted = reply
    return cursor, [e for e in claimed if e[1] is not None]
