"""An in-memory stand-in for a pymongo async database: unique indexes, insert_many with
ordered=False raising pymongo's own BulkWriteError on duplicates, and an outage switch."""

from __future__ import annotations

from typing import Any

from pymongo.errors import AutoReconnect, BulkWriteError


class FakeInsertManyResult:
    def __init__(self, inserted_ids: list[Any]) -> None:
        self.inserted_ids = inserted_ids


class FakeCollection:
    def __init__(self, db: FakeDatabase) -> None:
        self._db = db
        self.docs: list[dict[str, Any]] = []
        self._unique: list[tuple[str, ...]] = []
        self._keys: set[tuple[Any, ...]] = set()

    async def create_index(
        self, keys: list[tuple[str, int]], unique: bool = False, **_: Any
    ) -> str:
        self._db.check()
        if unique:
            self._unique.append(tuple(k for k, _ in keys))
        return "natural_key"

    async def insert_many(self, docs: list[dict[str, Any]], ordered: bool = True) -> Any:
        self._db.check()
        errors, inserted = [], []
        for i, doc in enumerate(docs):
            keys = [tuple(doc[k] for k in index) for index in self._unique]
            if any(key in self._keys for key in keys):
                errors.append({"index": i, "code": 11000, "errmsg": "E11000 duplicate key"})
                if ordered:
                    break
                continue
            self._keys.update(keys)
            self.docs.append(doc)
            inserted.append(i)
        if errors:
            raise BulkWriteError({"writeErrors": errors, "nInserted": len(inserted)})
        return FakeInsertManyResult(inserted)


class FakeDatabase:
    def __init__(self) -> None:
        self.collections: dict[str, FakeCollection] = {}
        self.down = False

    def check(self) -> None:
        if self.down:
            raise AutoReconnect("connection refused (simulated outage)")

    def __getitem__(self, name: str) -> FakeCollection:
        return self.collections.setdefault(name, FakeCollection(self))
