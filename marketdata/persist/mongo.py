"""MongoDB sink, with pymongo's async client.

`trades` and `books` collections, each with a unique index on its natural key;
insert_many(ordered=False) stores every new document, and duplicate-key errors from a
redelivered batch count as success. A document the server refuses for what it holds (a
write error with any other non-transient code), or that BSON cannot encode (an integer out of
int64 range), is reported as rejected; the others are stored.

trade_id is stored as a string, the venue's id as text. Versions before stored it as an
integer, and to the unique index 123 and "123" are different keys: a spool entry written by
the old version and redelivered to the new one would be stored twice. So start() converts
every integer trade_id in `trades` to its decimal text, once per database (a document in
`migrations` records it; later starts skip the scan). If the same trade is there both ways
(an older persist still writing next to this one), start() fails with what to do, rather
than keep both.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from bson.decimal128 import Decimal128
from bson.errors import InvalidDocument
from pymongo import ASCENDING, AsyncMongoClient
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    DuplicateKeyError,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
    WriteError,
)

from marketdata.logs import describe
from marketdata.persist.rows import BookRow, TradeRow
from marketdata.persist.sink import RetryableSinkError, WriteResult

log = logging.getLogger(__name__)

DUPLICATE_KEY = 11000
INDEXES = {
    "trades": [("exchange", ASCENDING), ("symbol", ASCENDING), ("trade_id", ASCENDING)],
    "books": [("exchange", ASCENDING), ("symbol", ASCENDING), ("time", ASCENDING)],
}
MIGRATIONS = "migrations"  # one document per migration done: {_id: name, time, converted}
TEXT_TRADE_IDS = "trades.trade_id as text"
INTEGER_TRADE_IDS = {"trade_id": {"$type": ["int", "long"]}}
TO_TEXT = [{"$set": {"trade_id": {"$toString": "$trade_id"}}}]  # an update pipeline: 4.2+
RETRYABLE = (ConnectionFailure, ServerSelectionTimeoutError)
UNENCODABLE = (OverflowError, InvalidDocument)  # raised by BSON, before anything is sent
# Write-error codes that say "not now" rather than "not this document".
TRANSIENT_CODES = frozenset({6, 7, 50, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436})
Refused = list[tuple[bytes, str]]  # (entry id, why)


class MongoSink:
    name = "mongo"

    def __init__(self, url: str, database: str, db: Any | None = None) -> None:
        """`db`: an already open database (tests pass an in-memory double)."""
        self._url = url
        self._database = database
        self._client: AsyncMongoClient[Any] | None = None
        self._db = db

    async def start(self) -> None:
        try:
            if self._db is None:
                self._client = AsyncMongoClient(self._url, serverSelectionTimeoutMS=3000)
                self._db = self._client[self._database]
            for collection, keys in INDEXES.items():
                await self._db[collection].create_index(keys, unique=True, name="natural_key")
            await _text_trade_ids(self._db)
        except RETRYABLE as e:
            await self.close()
            raise RetryableSinkError(f"mongodb unreachable: {describe(e)}") from e
        except OperationFailure as e:  # bad credentials, no privilege: a person can fix it
            await self.close()
            raise RetryableSinkError(f"mongodb refused the schema setup: {describe(e)}") from e
        except RetryableSinkError:
            await self.close()
            raise
        log.info("mongo sink ready: database %s", self._database)

    async def close(self) -> None:
        if self._client is not None:
            client, self._client, self._db = self._client, None, None
            await client.close()

    async def write(self, trades: list[TradeRow], books: list[BookRow]) -> WriteResult:
        if self._db is None:
            await self.start()
        result = WriteResult()
        for collection, ids, docs in (
            ("trades", [t.entry_id for t in trades], [_trade_doc(t) for t in trades]),
            ("books", [b.entry_id for b in books], [_book_doc(b) for b in books]),
        ):
            written, refused = await self._insert(collection, ids, docs)
            result.written[collection] = written
            result.rejected += refused
        return result

    async def _insert(
        self, collection: str, ids: list[bytes], docs: list[dict[str, Any]]
    ) -> tuple[int, Refused]:
        if not docs:
            return 0, []
        assert self._db is not None
        try:
            reply = await self._db[collection].insert_many(docs, ordered=False)
            return len(reply.inserted_ids), []
        except BulkWriteError as e:
            refused = [(ids[index], why) for index, why in _refusals(e, collection)]
            return int(e.details.get("nInserted", 0)), refused  # duplicates: already stored
        except UNENCODABLE:
            return await self._one_by_one(collection, ids, docs)
        except PyMongoError as e:
            raise RetryableSinkError(f"mongodb write failed: {describe(e)}") from e

    async def _one_by_one(
        self, collection: str, ids: list[bytes], docs: list[dict[str, Any]]
    ) -> tuple[int, Refused]:
        """Find the documents BSON cannot encode or the server refuses; store the others."""
        assert self._db is not None
        written, refused = 0, []
        for entry_id, doc in zip(ids, docs, strict=True):
            try:
                await self._db[collection].insert_one(doc)
                written += 1
            except DuplicateKeyError:
                pass  # already stored
            except UNENCODABLE as e:
                refused.append((entry_id, f"{collection}: {describe(e)}"))
            except WriteError as e:
                if e.code in TRANSIENT_CODES:
                    raise RetryableSinkError(f"mongodb write failed: {describe(e)}") from e
                refused.append((entry_id, _refusal(collection, e.code, e.details)))
            except PyMongoError as e:
                raise RetryableSinkError(f"mongodb write failed: {describe(e)}") from e
        return written, refused


async def _text_trade_ids(db: Any) -> None:
    """Integer trade_ids an earlier version stored become text, once per database."""
    if await db[MIGRATIONS].find_one({"_id": TEXT_TRADE_IDS}) is not None:
        return
    try:
        # Per document atomic, so two persist processes starting together are harmless.
        reply = await db["trades"].update_many(INTEGER_TRADE_IDS, TO_TEXT)
    except DuplicateKeyError as e:
        raise RetryableSinkError(
            "mongodb trades holds a trade with both an integer and a text trade_id (an older"
            " persist still writing?): stop it, delete the integer copies that have a text"
            f" twin, and this start is retried: {describe(e)}"
        ) from e
    converted = reply.modified_count
    try:
        await db[MIGRATIONS].insert_one(
            {"_id": TEXT_TRADE_IDS, "time": datetime.now(UTC), "converted": converted}
        )
    except DuplicateKeyError:
        pass  # another persist process recorded it first
    if converted:
        log.info("mongo trades: %d integer trade_ids converted to text", converted)


def _refusals(e: BulkWriteError, collection: str) -> list[tuple[int, str]]:
    """The write errors of a batch that refuse a document for good (duplicates are not
    errors here: a redelivered document is already stored). Raises RetryableSinkError if
    any says "not now"."""
    errors = [err for err in e.details.get("writeErrors", []) if err.get("code") != DUPLICATE_KEY]
    if any(err.get("code") in TRANSIENT_CODES for err in errors):
        raise RetryableSinkError(f"mongodb write failed: {errors[0]}") from e
    return [(int(err["index"]), _refusal(collection, err.get("code"), err)) for err in errors]


def _trade_doc(t: TradeRow) -> dict[str, Any]:
    return {
        "exchange": t.exchange, "symbol": t.symbol, "trade_id": t.trade_id, "time": t.time,
        "price": _decimal(t.price), "qty": _decimal(t.qty), "side": t.side,
        "recv_time": t.recv_time,
    }  # fmt: skip


def _book_doc(b: BookRow) -> dict[str, Any]:
    return {
        "exchange": b.exchange, "symbol": b.symbol, "time": b.time,
        "last_update_id": b.last_update_id, "exchange_time": b.exchange_time,
        "recv_time": b.recv_time, "bids": orjson.loads(b.bids), "asks": orjson.loads(b.asks),
    }  # fmt: skip


def _decimal(value: Decimal) -> Decimal128:
    return Decimal128(value)


def _refusal(collection: str, code: object, details: Any) -> str:
    """One wording for a refused document, from a batch or a single insert alike."""
    message = details.get("errmsg") if isinstance(details, dict) else None
    return f"{collection}: code {code}: {message}"
