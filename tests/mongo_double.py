"""An in-memory stand-in for a pymongo async database: unique indexes, insert_many with
ordered=False raising pymongo's own BulkWriteError on duplicates, insert_one, BSON's
OverflowError for an integer out of int64 range, a document validator, and an outage
switch; find_one by equality, and update_many for the one filter and update pipeline the
sink sends (`{field: {"$type": [...]}}`, `[{"$set": {field: {"$toString": "$field"}}}]`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pymongo.errors import AutoReconnect, BulkWriteError, DuplicateKeyError, WriteError

INT64 = range(-(2**63), 2**63)
VALIDATION_FAILED = 121


class FakeInsertManyResult:
    def __init__(self, inserted_ids: list[Any]) -> None:
        self.inserted_ids = inserted_ids


class FakeUpdateResult:
    def __init__(self, matched_count: int, modified_count: int) -> None:
        self.matched_count = matched_count
        self.modified_count = modified_count


# BSON type names the double tells apart ("int" and "long" are both Python ints).
BSON_TYPES: dict[str, Callable[[Any], bool]] = {
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool) and -(2**31) <= v < 2**31,
    "long": lambda v: isinstance(v, int) and not isinstance(v, bool) and v in INT64,
    "string": lambda v: isinstance(v, str),
}


class FakeCollection:
    def __init__(self, db: FakeDatabase) -> None:
        self._db = db
        self.docs: list[dict[str, Any]] = []
        self._unique: list[tuple[str, ...]] = []
        self._keys: set[tuple[Any, ...]] = set()
        self.validator: Callable[[dict[str, Any]], bool] = lambda doc: True

    async def create_index(
        self, keys: list[tuple[str, int]], unique: bool = False, **_: Any
    ) -> str:
        self._db.check()
        if unique:
            self._unique.append(tuple(k for k, _ in keys))
        return "natural_key"

    async def insert_many(self, docs: list[dict[str, Any]], ordered: bool = True) -> Any:
        self._db.check()
        for doc in docs:  # the whole batch is encoded before anything is sent
            _encode(doc)
        errors, inserted = [], []
        for i, doc in enumerate(docs):
            error = self._store(doc)
            if error is not None:
                errors.append({"index": i, **error})
                if ordered:
                    break
                continue
            inserted.append(i)
        if errors:
            raise BulkWriteError({"writeErrors": errors, "nInserted": len(inserted)})
        return FakeInsertManyResult(inserted)

    async def insert_one(self, doc: dict[str, Any]) -> None:
        self._db.check()
        _encode(doc)
        error = self._store(doc)
        if error is None:
            return
        if error["code"] == 11000:
            raise DuplicateKeyError(error["errmsg"], 11000, error)
        raise WriteError(error["errmsg"], error["code"], error)

    async def find_one(self, query: dict[str, Any]) -> dict[str, Any] | None:
        self._db.check()
        return next((d for d in self.docs if all(d.get(k) == v for k, v in query.items())), None)

    async def update_many(self, query: dict[str, Any], pipeline: list[dict[str, Any]]) -> Any:
        """Documents updated in order; a duplicate key stops there (those before stay)."""
        self._db.check()
        ((field, condition),) = query.items()
        ((stage, changes),) = pipeline[0].items()
        ((target, expression),) = changes.items()
        if (list(condition), stage, target, expression) != (
            ["$type"],
            "$set",
            field,
            {"$toString": f"${field}"},
        ):
            raise NotImplementedError(f"the double does not do {query} {pipeline}")
        matched = [
            d for d in self.docs if any(BSON_TYPES[t](d.get(field)) for t in condition["$type"])
        ]
        for doc in matched:
            updated = {**doc, field: str(doc[field])}
            old_keys, new_keys = self._index_keys(doc), self._index_keys(updated)
            if any(key in self._keys - old_keys for key in new_keys):
                error = {"code": 11000, "errmsg": "E11000 duplicate key"}
                raise DuplicateKeyError(error["errmsg"], 11000, error)
            self._keys = (self._keys - old_keys) | new_keys
            doc[field] = updated[field]
        return FakeUpdateResult(len(matched), len(matched))

    def _index_keys(self, doc: dict[str, Any]) -> set[tuple[Any, ...]]:
        return {tuple(doc.get(k) for k in index) for index in self._unique}

    def _store(self, doc: dict[str, Any]) -> dict[str, Any] | None:
        if not self.validator(doc):
            return {"code": VALIDATION_FAILED, "errmsg": "Document failed validation"}
        keys = [tuple(doc[k] for k in index) for index in self._unique]
        if "_id" in doc:  # MongoDB's own unique index
            keys.append(("_id", doc["_id"]))
        if any(key in self._keys for key in keys):
            return {"code": 11000, "errmsg": "E11000 duplicate key"}
        self._keys.update(keys)
        self.docs.append(doc)
        return None


def _encode(doc: dict[str, Any]) -> None:
    """What BSON refuses before sending: an integer out of int64 range."""
    for value in doc.values():
        if isinstance(value, int) and value not in INT64:
            raise OverflowError("MongoDB can only handle up to 8-byte ints")


class FakeDatabase:
    def __init__(self) -> None:
        self.collections: dict[str, FakeCollection] = {}
        self.down = False

    def check(self) -> None:
        if self.down:
            raise AutoReconnect("connection refused (simulated outage)")

    def __getitem__(self, name: str) -> FakeCollection:
        return self.collections.setdefault(name, FakeCollection(self))
