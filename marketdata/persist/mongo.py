"""MongoDB sink, with pymongo's async client.

`trades` and `books` collections, each with a unique index on its natural key;
insert_many(ordered=False) stores every new document, and duplicate-key errors from a
redelivered batch count as success.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import orjson
from bson.decimal128 import Decimal128
from pymongo import ASCENDING, AsyncMongoClient
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
)

from marketdata.persist.rows import BookRow, TradeRow
from marketdata.persist.sink import FatalSinkError, RetryableSinkError, WriteResult

log = logging.getLogger(__name__)

DUPLICATE_KEY = 11000
INDEXES = {
    "trades": [("exchange", ASCENDING), ("symbol", ASCENDING), ("trade_id", ASCENDING)],
    "books": [("exchange", ASCENDING), ("symbol", ASCENDING), ("time", ASCENDING)],
}
RETRYABLE = (ConnectionFailure, ServerSelectionTimeoutError)


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
        except RETRYABLE as e:
            await self.close()
            raise RetryableSinkError(f"mongodb unreachable: {e}") from e
        except OperationFailure as e:
            raise FatalSinkError(f"mongodb refused the indexes: {e}") from e
        log.info("mongo sink ready: database %s", self._database)

    async def close(self) -> None:
        if self._client is not None:
            client, self._client, self._db = self._client, None, None
            await client.close()

    async def write(self, trades: list[TradeRow], books: list[BookRow]) -> WriteResult:
        if self._db is None:
            await self.start()
        result = WriteResult()
        result.written["trades"] = await self._insert("trades", [_trade_doc(t) for t in trades])
        result.written["books"] = await self._insert("books", [_book_doc(b) for b in books])
        return result

    async def _insert(self, collection: str, docs: list[dict[str, Any]]) -> int:
        if not docs:
            return 0
        assert self._db is not None
        try:
            reply = await self._db[collection].insert_many(docs, ordered=False)
            return len(reply.inserted_ids)
        except BulkWriteError as e:
            errors = e.details.get("writeErrors", [])
            others = [err for err in errors if err.get("code") != DUPLICATE_KEY]
            if others:
                raise FatalSinkError(f"mongodb refused {collection}: {others[0]}") from e
            return int(e.details.get("nInserted", 0))  # the rest were already stored
        except RETRYABLE as e:
            raise RetryableSinkError(f"mongodb write failed: {e}") from e
        except PyMongoError as e:
            raise RetryableSinkError(f"mongodb write failed: {e}") from e


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
