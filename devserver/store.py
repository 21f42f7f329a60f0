"""The embedded local DynamoDB store: moto's DynamoDB behind a small HTTP server.

    store = EmbeddedStore(".data")        # or EmbeddedStore(None) for memory only
    url = store.start()                   # "http://127.0.0.1:54321"; serves in a daemon thread
    boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1",
                 aws_access_key_id="x", aws_secret_access_key="x")
    store.stop()                          # or: with EmbeddedStore(...) as store: ...

Clients create their tables through the normal CreateTable API. Any region and any dummy
credentials work; as in moto and DynamoDB, tables live per (account, region).

What this adds to moto
----------------------
* One request at a time. Every request is applied to the data under one lock, so conditional
  writes and TransactWriteItems are atomic as in DynamoDB (moto's own servers are not). HTTP is
  read and written on per-connection threads (HTTP/1.1 keep-alive, listen backlog 128, so a burst
  of 40+ clients sees no connection resets), so a client that connects and stalls holds up no one,
  as it would with a single-threaded server.
* Its own backends. Each EmbeddedStore holds its own ``DynamoDBBackend`` per (account, region)
  instead of moto's process-global ``dynamodb_backends``, so ``mock_aws`` elsewhere in the same
  process can neither see nor reset it.
* Cost that does not grow with table size (``apply_patches``, applied by ``start``, process-wide):
  - moto's ``DynamoDBBackend.transact_write_items`` deep-copies every table a transaction touches,
    for rollback. It is replaced by the same code with an item-level undo log: only the items the
    transaction touches are copied, and restored if it fails. Results and errors are moto's
    (CancellationReasons with Code/Message, and Item under ReturnValuesOnConditionCheckFailure=
    ALL_OLD; ValidationException for two operations on one item).
  - moto remembers every model instance it ever made (``instances_tracked``, for its dashboard);
    for DynamoDB models (items, tables, stream records) that tracking is switched off.
  - moto's ``Table.query`` looks at every item of the table and sorts the candidates, for every
    Query. It is given instead only the items of the queried partition that can change its
    answer, found with a sorted index per (table, partition, sort attribute) that is built on a
    partition's first query and kept up to date by every write; moto's own code then orders,
    pages, limits, projects and filters them, so answers are moto's. Table and local secondary
    index queries with a hash key cost O(log n + k) (n items in the partition, k in the answer);
    GSI queries and anything unusual are moto's full walk (see "Query index" below;
    ``QUERY_STATS`` counts both).
  All are pinned to moto ``MOTO_VERSION``: ``apply_patches`` raises ``MotoPinError`` if moto's
  version or the source of any function the store replaces or relies on has changed
  (``PINNED_SOURCES``), so an upgrade is noticed rather than silently mis-patched.

Persistence (when ``data_dir`` is given)
----------------------------------------
Files in ``data_dir`` (nothing else there is touched):

``snapshot.jsonl``
    The whole store at one point, one JSON document per line::

        {"format": 1, "moto": "5.2.5", "seq": 1234}              header: log records <= seq included
        {"table": {"account": ..., "region": ..., "name": ..., "schema": ..., "attr": ...,
                   "lsis": [...], "gsis": [...], "billing_mode": ..., "throughput": ...,
                   "created_at": ..., "ttl": ..., "tags": ..., ...}}
        {"item": {"pk": {"S": "w1"}, "n": {"N": "5"}, "b": {"B": {"b64": "AAE="}}}}   (its items)
        ... more tables, each followed by its items ...
        {"end": {"tables": 2, "items": 50001}}                   trailer: the file is complete

    Binary values (B, BS members) are written as {"b64": "..."}; everything else as DynamoDB JSON.
    Written to ``snapshot.jsonl.tmp``, flushed, fsynced, then atomically renamed over the old one.
``log.jsonl``
    Every request that changed data and succeeded since the snapshot, in the order applied, one
    JSON line each, written and flushed (to the OS) before the response is sent::

        {"seq": 1235, "account": "123456789012", "region": "us-east-1", "op": "UpdateItem",
         "body": {...the request as sent...}, "meta": {...}}      (meta: CreateTable/UpdateTable
                                                                   timestamps, so replay matches)
    Requests that failed (a condition not met, a cancelled transaction) are not logged.
``LOCK``
    flock()ed while a store has the directory open; a second store on it fails fast.

Start: load the snapshot, replay the log records whose seq is above the snapshot's, then compact
(write a new snapshot, truncate the log). While running, compaction also happens once the log holds
``compact_every`` records (default 1,000), or one record per ``ITEMS_PER_LOG_RECORD`` (100) items in
the snapshot if that is more. Replaying a record (a full request through moto, about 2 ms here) costs
about as much as loading 100 items from a snapshot (about 15 us each), so a restart takes at most
about 2 s plus twice the snapshot's load time, and compaction (about 5 us an item), spread over the
writes between compactions, costs a bounded amount per write however large the store grows.

A crash loses at most the request being written: a torn last log line is ignored at replay (a bad
line anywhere else is corruption and stops the start with ``StoreCorruptError``); a crash between
the snapshot's rename and the log's truncation is harmless because replay skips records already in
the snapshot (by seq). By default log writes are flushed but not fsynced: they survive the process
being killed, not the machine losing power (pass ``fsync=True`` for that).

Kept: tables (key schema, attribute definitions, LSIs, GSIs, billing mode, throughput, stream
specification, SSE, TTL setting, tags, deletion protection, creation time) and their items.
Not kept across a compaction: backups, exports, imports, resource policies, stream records.

``EmbeddedStore(data_dir, fresh=True)`` or ``store.reset()`` empties the store and its files.
"""

from __future__ import annotations

import base64
import copy
import datetime
import fcntl
import hashlib
import inspect
import json
import logging
import os
import socket
import threading
import weakref
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from typing import Any

import moto
from botocore.model import OperationNotFoundError
from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.common_models import BaseModel
from moto.core.model_instances import model_data
from moto.core.request import Request as _MotoRequest
from moto.core.responses import BaseResponse
from moto.dynamodb.exceptions import (
    ConditionalCheckFailed,
    MockValidationException,
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
from moto.dynamodb.models.table import (
    RESULT_SIZE_LIMIT,
    GlobalSecondaryIndex,
    LocalSecondaryIndex,
    StreamShard,
    Table,
)
from moto.dynamodb.parsing.key_condition_expression import validate_schema
from moto.dynamodb.responses import DynamoHandler
from sortedcontainers import SortedList
from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Response

__all__ = [
    "EmbeddedStore",
    "MotoPinError",
    "StoreCorruptError",
    "apply_patches",
    "MOTO_VERSION",
    "QUERY_STATS",
]

log = logging.getLogger(__name__)

MOTO_VERSION = "5.2.5"

SNAPSHOT_NAME = "snapshot.jsonl"
LOG_NAME = "log.jsonl"
LOCK_NAME = "LOCK"
SNAPSHOT_FORMAT = 1
#: Replaying one log record costs about as much as loading this many items from a snapshot.
ITEMS_PER_LOG_RECORD = 100

TARGET_PREFIX = "DynamoDB_20120810."

#: Operations that never change data: not written to the log.
READ_ONLY_OPERATIONS = frozenset(
    {
        "BatchGetItem",
        "DescribeBackup",
        "DescribeContinuousBackups",
        "DescribeContributorInsights",
        "DescribeEndpoints",
        "DescribeExport",
        "DescribeGlobalTable",
        "DescribeGlobalTableSettings",
        "DescribeImport",
        "DescribeKinesisStreamingDestination",
        "DescribeLimits",
        "DescribeTable",
        "DescribeTableReplicaAutoScaling",
        "DescribeTimeToLive",
        "GetItem",
        "GetResourcePolicy",
        "ListBackups",
        "ListContributorInsights",
        "ListExports",
        "ListGlobalTables",
        "ListImports",
        "ListTables",
        "ListTagsOfResource",
        "Query",
        "Scan",
        "TransactGetItems",
    }
)


class MotoPinError(RuntimeError):
    """moto is not the version (or the code) this module's patches were written against."""


class StoreCorruptError(RuntimeError):
    """The data directory holds something other than a torn last log line that cannot be read."""


# --------------------------------------------------------------------------------------------
# Patches to moto, pinned to MOTO_VERSION
# --------------------------------------------------------------------------------------------

#: sha256 of ``inspect.getsource`` of each moto function this module replaces or whose behaviour
#: it relies on (how items are laid out, which attributes a table has, how a request finds its
#: account, region and backend). A different moto fails ``apply_patches`` with the names that moved.
PINNED_SOURCES: dict[str, str] = {
    "moto.dynamodb.models.DynamoDBBackend.transact_write_items":
        "81db2cb7d94e39c90b3a2077e1f4bb41a449c558ef9b1b1e2910fdaa39978ad4",
    "moto.core.common_models.BaseModel.__new__":
        "08cf0ef20e88029a2eb91949492ce3281001a34b98143db186239962ad379eec",
    "moto.dynamodb.models.table.Table.__init__":
        "a56181a75aa270051d49daeb6a1f55b3eba543e6f58b4391e46d24a7cf8bbc74",
    "moto.dynamodb.models.table.Table.put_item":
        "de23933013ef842639046c19bcf7e418bce0474d810f6719368be4cedce11d47",
    "moto.dynamodb.models.table.Table.get_item":
        "b08e98fe37b7e5836afe03b010d637ef50df5dea6cbecd9cf8816eef326a21cd",
    "moto.dynamodb.models.table.Table.delete_item":
        "1594f7b07616c8cb8cdf0fbf58d6f54eeac83f25d7ac7b14e832a08e10efd8f9",
    "moto.dynamodb.models.DynamoDBBackend.get_keys_value":
        "1f948797496ddc2cd4e4752e29e470d19ce757ca3406e07fed6bd90b331c1caa",
    "moto.dynamodb.responses.DynamoHandler.dynamodb_backend":
        "49c0711cc1fdff50d0a12ec5bf8a9e1a267b3ab2a32922fe477d7d1dc7e74e02",
    "moto.core.responses.BaseResponse.get_current_account":
        "73816bc14741196009c56cf8e61bde229f02f83be0284a55aaa5342426612aa7",
    "moto.core.responses.BaseResponse.get_region_from_url":
        "f26e68bd6df666c35de91eaad3df6ffb82267ab30148e91e9f3c38115d08911c",
    # The query index (see "Query index" below): Table.query is replaced; the rest is what its
    # answers and its upkeep rely on (how moto orders, pages, compares and sizes items, which
    # calls change items, and what shape key conditions reach Table.query in).
    "moto.dynamodb.models.table.Table.query":
        "002b4d00be6df07cf37f6cbe0132e5eb89455ae12a8e79b23db3fb492450f21e",
    "moto.dynamodb.models.table.Table.all_items":
        "c80d2ee3c896acd0cab6ca35aaeae3ab3fb65858933f8a3403d4e027c240f31d",
    "moto.dynamodb.models.table.Table._item_comes_before_dct":
        "6d70f41f7cb059f40e932e9c6c13cc57b6052c5d025c51235df414adf172bee1",
    "moto.dynamodb.models.table.Table.sorted_items":
        "216dac1cd6b659d283e91006b809136623723efb90125b015e07052478724937",
    "moto.dynamodb.models.table.Table._generate_attr_to_sort_by":
        "afef70e159fa8cb505cc030b323479b7ce105060c9eeecbce102247e41f302b2",
    "moto.dynamodb.models.DynamoDBBackend.update_item":
        "218984588dd689a5de81678ce11e6a40d05c91e7b6c21b44c4ed4122fe74aa9f",
    "moto.dynamodb.models.DynamoDBBackend.query":
        "b8f2b308cd13edb48bb59ab0321ec3f935605629acb1d1ed634ba9f2bbcb107e",
    "moto.dynamodb.models.DynamoDBBackend.execute_statement":
        "6579d0ba9df2be56634bad07a48f678a04135d012f90a4bde80874b2590c397a",
    "moto.dynamodb.models.dynamo_type.DynamoType.__eq__":
        "48f12362c49f00c1138f550163b14b9c2f3bf0a50f0f907f426510a0417052c1",
    "moto.dynamodb.models.dynamo_type.DynamoType.__lt__":
        "44033f9fbd16ab927b667a2a1b0de8312f6c7e612e42f17fe028115ebe071566",
    "moto.dynamodb.models.dynamo_type.DynamoType.__hash__":
        "4d37bb816dede3221cef85255e0338002372cbad3899909b4b2a7532f7197f05",
    "moto.dynamodb.models.dynamo_type.DynamoType.cast_value":
        "135da387dfcc7c1ca4930a6d64b5c474519422983cc2a4d03b37b716d090ae0c",
    "moto.dynamodb.models.dynamo_type.DynamoType.compare":
        "5a77253bbdb399ee60bd2fc84aaf205a2e7ec3c71d32e9194d0ca6b4dd4da601",
    "moto.dynamodb.models.dynamo_type.Item.size":
        "9bc6ada96d33365c0a0abcb4faf534e1bdc7bfe0af0ef0c1c6671eccd5b80f45",
    "moto.dynamodb.parsing.key_condition_expression.validate_schema":
        "1cd02c0c35908edb655e0cd357e6c4378d2187a9caae319eeac388bae687c134",
}


def _pinned_objects() -> dict[str, Any]:
    return {
        "moto.dynamodb.models.DynamoDBBackend.transact_write_items": ORIGINAL_TRANSACT_WRITE_ITEMS,
        "moto.core.common_models.BaseModel.__new__": _ORIGINAL_BASEMODEL_NEW,
        "moto.dynamodb.models.table.Table.__init__": Table.__init__,
        "moto.dynamodb.models.table.Table.put_item": ORIGINAL_PUT_ITEM,
        "moto.dynamodb.models.table.Table.get_item": Table.get_item,
        "moto.dynamodb.models.table.Table.delete_item": ORIGINAL_DELETE_ITEM,
        "moto.dynamodb.models.DynamoDBBackend.get_keys_value": DynamoDBBackend.get_keys_value,
        "moto.dynamodb.responses.DynamoHandler.dynamodb_backend": DynamoHandler.dynamodb_backend.fget,
        "moto.core.responses.BaseResponse.get_current_account": BaseResponse.get_current_account,
        "moto.core.responses.BaseResponse.get_region_from_url": BaseResponse.get_region_from_url,
        "moto.dynamodb.models.table.Table.query": ORIGINAL_QUERY,
        "moto.dynamodb.models.table.Table.all_items": Table.all_items,
        "moto.dynamodb.models.table.Table._item_comes_before_dct": Table._item_comes_before_dct,
        "moto.dynamodb.models.table.Table.sorted_items": Table.sorted_items,
        "moto.dynamodb.models.table.Table._generate_attr_to_sort_by":
            Table._generate_attr_to_sort_by,
        "moto.dynamodb.models.DynamoDBBackend.update_item": ORIGINAL_UPDATE_ITEM,
        "moto.dynamodb.models.DynamoDBBackend.query": DynamoDBBackend.query,
        "moto.dynamodb.models.DynamoDBBackend.execute_statement": DynamoDBBackend.execute_statement,
        "moto.dynamodb.models.dynamo_type.DynamoType.__eq__": DynamoType.__eq__,
        "moto.dynamodb.models.dynamo_type.DynamoType.__lt__": DynamoType.__lt__,
        "moto.dynamodb.models.dynamo_type.DynamoType.__hash__": DynamoType.__hash__,
        "moto.dynamodb.models.dynamo_type.DynamoType.cast_value": DynamoType.cast_value.fget,
        "moto.dynamodb.models.dynamo_type.DynamoType.compare": DynamoType.compare,
        "moto.dynamodb.models.dynamo_type.Item.size": Item.size,
        "moto.dynamodb.parsing.key_condition_expression.validate_schema": validate_schema,
    }


def source_sha256(obj: Any) -> str:
    return hashlib.sha256(inspect.getsource(obj).encode("utf-8")).hexdigest()


# The functions being replaced, as moto has them (a patched one carries its original along, in
# case this module is imported twice, e.g. once as __main__).
def _unpatched(obj: Any) -> Any:
    obj = obj.__func__ if isinstance(obj, staticmethod) else obj
    return getattr(obj, "_store_original", obj)


ORIGINAL_TRANSACT_WRITE_ITEMS = _unpatched(DynamoDBBackend.transact_write_items)
_ORIGINAL_BASEMODEL_NEW = _unpatched(BaseModel.__dict__["__new__"])
ORIGINAL_QUERY = _unpatched(Table.query)
ORIGINAL_PUT_ITEM = _unpatched(Table.put_item)
ORIGINAL_DELETE_ITEM = _unpatched(Table.delete_item)
ORIGINAL_UPDATE_ITEM = _unpatched(DynamoDBBackend.update_item)

_patch_lock = threading.Lock()
_patched = False


def check_moto_pin() -> None:
    """Raise MotoPinError unless moto is MOTO_VERSION with the exact code the patches expect."""
    if moto.__version__ != MOTO_VERSION:
        raise MotoPinError(
            f"devserver.store is pinned to moto {MOTO_VERSION} but moto {moto.__version__} is "
            "installed. Re-check its patches against the new moto (DynamoDBBackend."
            "transact_write_items, BaseModel.__new__, Table.query and the query index's upkeep) "
            "and update PINNED_SOURCES and MOTO_VERSION, then run tests/store."
        )
    moved = [
        name
        for name, obj in _pinned_objects().items()
        if source_sha256(obj) != PINNED_SOURCES[name]
    ]
    if moved:
        raise MotoPinError(
            f"moto {moto.__version__} differs from the code devserver.store was written against; "
            f"these changed: {', '.join(moved)}. Re-check the patches, update PINNED_SOURCES, "
            "then run tests/store."
        )


def _is_dynamodb_model(cls: type) -> bool:
    return cls.__module__.startswith("moto.dynamodb.")


def _basemodel_new(cls: type, *args: Any, **kwargs: Any) -> Any:
    # moto's BaseModel.__new__, except that DynamoDB models are not appended to
    # cls.instances_tracked (a list that otherwise holds every item, copy and stream record
    # ever made, for moto's dashboard, and never lets them go).
    instance = super(BaseModel, cls).__new__(cls)  # type: ignore[misc]
    if not _is_dynamodb_model(cls):
        cls.instances_tracked.append(instance)  # type: ignore[attr-defined]
    return instance


def apply_patches() -> None:
    """Check the moto pin, then patch moto (once per process; later calls do nothing)."""
    global _patched
    with _patch_lock:
        if _patched or hasattr(DynamoDBBackend.transact_write_items, "_store_original"):
            _patched = True
            return
        check_moto_pin()
        DynamoDBBackend.transact_write_items = _transact_write_items  # type: ignore[method-assign]
        BaseModel.__new__ = staticmethod(_basemodel_new)  # type: ignore[assignment]
        Table.query = _query  # type: ignore[method-assign]
        Table.put_item = _put_item  # type: ignore[method-assign]
        Table.delete_item = _delete_item  # type: ignore[method-assign]
        DynamoDBBackend.update_item = _update_item  # type: ignore[method-assign]
        for cls in list(model_data.get("dynamodb", {}).values()):
            cls.instances_tracked = []  # type: ignore[attr-defined]
        _patched = True


_basemodel_new._store_original = _ORIGINAL_BASEMODEL_NEW  # type: ignore[attr-defined]


class _UndoLog:
    """The items a transaction touches, as they were before it, to put back if it fails."""

    def __init__(self) -> None:
        # (table, hash key, range key or None, partition existed, copy of the item or None)
        self.entries: list[tuple[Table, DynamoType, DynamoType | None, bool, Item | None]] = []
        self.stream_lengths: dict[int, tuple[StreamShard, int]] = {}

    def remember(self, backend: DynamoDBBackend, table_name: str, key: dict[str, Any]) -> None:
        # Same lookups (and so the same exceptions, in the same order) as backend.get_item.
        table = backend.get_table(table_name)
        hash_key, range_key = backend.get_keys_value(table, key)
        if range_key is not None:
            partition = table.items.get(hash_key)  # .get: no empty partition made by looking
            had_partition = partition is not None
            old = partition.get(range_key) if partition is not None else None
        else:
            had_partition = hash_key in table.items
            old = table.items.get(hash_key)
        self.entries.append(
            (table, hash_key, range_key, had_partition, copy.deepcopy(old) if old else None)
        )
        shard = table.stream_shard
        if shard is not None and id(shard) not in self.stream_lengths:
            self.stream_lengths[id(shard)] = (shard, len(shard.items))

    def rollback(self) -> None:
        for table, hash_key, range_key, had_partition, old in reversed(self.entries):
            if range_key is None:
                if old is None:
                    table.items.pop(hash_key, None)
                else:
                    table.items[hash_key] = old
            elif old is None:
                partition = table.items.get(hash_key)
                if partition is not None:
                    partition.pop(range_key, None)
                    if not had_partition and not partition:
                        del table.items[hash_key]
            else:
                table.items[hash_key][range_key] = old
            _note_write(table, hash_key, range_key)
        for shard, length in self.stream_lengths.values():
            del shard.items[length:]


def _transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    """moto 5.2.5's DynamoDBBackend.transact_write_items, line for line, except for rollback:
    instead of deep-copying each touched table up front, copy each touched item just before it is
    read (``undo.remember``) and put those back on failure (``undo.rollback``)."""
    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    undo = _UndoLog()

    target_items: set[tuple[str, str]] = set()

    def check_unicity(table_name: str, key: dict[str, Any]) -> None:
        item = (str(table_name), str(dict(sorted(key.items()))))
        if item in target_items:
            raise MultipleTransactionsException()
        target_items.add(item)

    errors: list[tuple[str, str, dict[str, Any]] | tuple[None, None, None]] = []
    for item in transact_items:
        original_item: dict[str, Any] | None = None
        if len(list(item.keys())) > 1:
            raise TransactWriteSingleOpException

        try:
            op_type, op = next(iter(item.items()))
            if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
                raise ValueError("Unsupported transaction operation")

            table_name = op["TableName"]
            condition_expression = op.get("ConditionExpression")
            expression_attribute_names = op.get("ExpressionAttributeNames")
            expression_attribute_values = op.get("ExpressionAttributeValues")
            return_values_on_condition_check_failure = op.get(
                "ReturnValuesOnConditionCheckFailure"
            )

            if op_type == "Put":
                attrs = op["Item"]
                table = self.get_table(table_name)
                key = {table.hash_key_attr: attrs[table.hash_key_attr]}
                if table.range_key_attr is not None:
                    key[table.range_key_attr] = attrs[table.range_key_attr]
            else:
                key = op["Key"]

            check_unicity(table_name, key)

            undo.remember(self, table_name, key)
            current = self.get_item(table_name, key)
            if condition_expression is not None:
                condition_op = get_filter_expression(
                    condition_expression,
                    expression_attribute_names,
                    expression_attribute_values,
                )
                if not condition_op.expr(current):
                    if return_values_on_condition_check_failure == "ALL_OLD" and current:
                        original_item = current.to_json()["Attributes"]
                    raise ConditionalCheckFailed(item=original_item)

            if op_type == "Put":
                attrs = op["Item"]
                self.put_item(
                    table_name,
                    attrs,
                    condition_expression=condition_expression,
                    expression_attribute_names=expression_attribute_names,
                    expression_attribute_values=expression_attribute_values,
                )
            elif op_type == "Delete":
                self.delete_item(
                    table_name,
                    key,
                    condition_expression=condition_expression,
                    expression_attribute_names=expression_attribute_names,
                    expression_attribute_values=expression_attribute_values,
                )
            elif op_type == "Update":
                update_expression = op["UpdateExpression"]
                self.update_item(
                    table_name,
                    key,
                    update_expression=update_expression,
                    condition_expression=condition_expression,
                    expression_attribute_names=expression_attribute_names,
                    expression_attribute_values=expression_attribute_values,
                )
            errors.append((None, None, None))
        except (MultipleTransactionsException, MockValidationException):
            undo.rollback()
            raise
        except ConditionalCheckFailed as e:
            errors.append(("ConditionalCheckFailed", str(e.message), original_item))  # type: ignore
        except Exception as e:  # noqa: BLE001 - moto reports any other failure as a reason
            errors.append((type(e).__name__, str(e), original_item))  # type: ignore

    if any(code is not None for code, _, _ in errors):
        undo.rollback()
        raise TransactionCanceledException(errors)


_transact_write_items._store_original = ORIGINAL_TRANSACT_WRITE_ITEMS  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------------
# Query index
# --------------------------------------------------------------------------------------------
#
# moto's Table.query looks at every item of the table (``all_items()``, itself sorted), then
# sorts the candidates, for every Query. ``_query`` hands moto's own Table.query a *window*
# instead: the few items of the queried partition that can change its answer, found with a
# sorted index kept per (table, partition, sort attribute). moto's code then sorts, skips to the
# ExclusiveStartKey, limits, pages, projects and filters that window exactly as it would the
# whole table, so the answer (Items, Count, ScannedCount, LastEvaluatedKey, errors) is moto's.
#
# Which items can change moto's answer: moto walks the partition's items in index order (reversed
# when ScanIndexForward is false), skipping those up to and including the ExclusiveStartKey. For
# each item it first stops -- LastEvaluatedKey is then the last result -- if Limit results are in
# or if this item would take the results past 1 MB; otherwise it takes the item if the range
# condition holds. The items the condition holds for are contiguous in index order (=, <, <=, >,
# >=, BETWEEN, and begins_with on strings). So the items walked before them change nothing
# (nothing is taken yet and none is over 1 MB: a partition holding an item over BIG_ITEM_SIZE is
# left to moto's walk), and of the items after them only the first can (it stops the walk when
# Limit results are in), unless the results are within BIG_ITEM_SIZE of 1 MB, when all of them are
# handed over. The window is therefore: the matching items in walk order up to and including the
# one the walk stops at, then the first item after them (or all of them). Its cost is O(log n + k)
# for n items in the partition and k in the answer; the table's other partitions are not looked at.
#
# The index of a partition is built on its first query (O(n log n), once), then kept up to date
# incrementally: every call that changes items -- Table.put_item and Table.delete_item (used by
# PutItem, DeleteItem, BatchWriteItem, TransactWriteItems, PartiQL, imports) and
# DynamoDBBackend.update_item (the one call that changes an item in place, possibly its index
# attribute), the transaction undo log and the snapshot loader -- marks the item's key dirty, and
# the next query of the partition re-files just those keys. As a safety net, the index is rebuilt
# if its item count disagrees with the partition's or an item it hands over is not where it says.
#
# Left to moto's own query (``QUERY_STATS["fallback"]``): tables without a range key are answered
# from their one item per key; GSIs, multi-attribute keys, binary sort keys, QueryFilter /
# legacy non-key conditions, key conditions or ExclusiveStartKeys of other shapes or types, a
# Limit below 1, partitions holding items of another type under the index attribute or over
# BIG_ITEM_SIZE, and tables where an update changed an item's own key attributes.

#: An item larger than this (moto checks 405,000 bytes on writes, but updating a nested attribute
#: is not checked) sends queries of its partition to moto's own walk.
BIG_ITEM_SIZE = 409_600

#: How queries were answered: "indexed" (a window) or "fallback" (moto's walk of the table);
#: "examined": items the windows looked at; "built": partition indexes built; "synced": item
#: keys re-filed after writes; "stale": indexes found out of date and rebuilt (should stay 0);
#: "errors": failures of the index itself, answered by moto's walk instead (should stay 0).
QUERY_STATS: dict[str, int] = dict.fromkeys(
    ("indexed", "fallback", "examined", "built", "synced", "stale", "errors"), 0
)

_RANGE_OPS = frozenset({"=", "<", "<=", ">", ">=", "BETWEEN", "BEGINS_WITH"})
_SORT_TYPES = frozenset({"S", "N"})
_BAD = object()  # a key value that the index cannot order exactly as moto does


class _Top:
    """Greater than any key component, so that (x, _TOP) sorts after every (x, ...)."""

    __slots__ = ()

    def __lt__(self, other: Any) -> bool:
        return False

    def __le__(self, other: Any) -> bool:
        return other is self

    def __gt__(self, other: Any) -> bool:
        return other is not self

    def __ge__(self, other: Any) -> bool:
        return True

    def __eq__(self, other: Any) -> bool:
        return other is self

    def __ne__(self, other: Any) -> bool:
        return other is not self

    __hash__ = object.__hash__


_TOP = _Top()


class _Stale(Exception):
    """An index disagrees with its partition: something changed items without telling it."""


def _order_value(dt: Any, kind: str) -> Any:
    """What moto orders and compares a key value of type ``kind`` ("S" or "N") by (its
    ``cast_value``), or _BAD if it is not a plain value of that type."""
    if not isinstance(dt, DynamoType) or dt.type != kind or type(dt.value) is not str:
        return _BAD
    if kind == "S":
        return dt.value
    try:
        number = Decimal(dt.value)
    except (InvalidOperation, ValueError):
        return _BAD
    return number if number.is_finite() else _BAD


def _is_plain_key(dt: Any) -> bool:
    """Whether ``dt`` finds its partition in ``table.items`` exactly as moto's == finds items."""
    if not isinstance(dt, DynamoType):
        return False
    if dt.type in _SORT_TYPES:
        return _order_value(dt, dt.type) is not _BAD
    return dt.type == "B" and isinstance(dt.value, (str, bytes))


def _wire_key(value: Any) -> DynamoType | None:
    """A key value as sent in an ExclusiveStartKey ({"S": "x"}), or None if not plainly one."""
    if type(value) is not dict or len(value) != 1:
        return None
    ((kind, raw),) = value.items()
    if kind not in ("S", "N", "B") or not isinstance(raw, (str, bytes)):
        return None
    return DynamoType(value)


def _prefix_end(prefix: str) -> str | None:
    """The least string above every string that starts with ``prefix`` (None: there is none)."""
    while prefix and prefix[-1] == "\U0010ffff":
        prefix = prefix[:-1]
    if not prefix:
        return None
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class _SortIndex:
    """One partition's items in moto's query order for one sort attribute: keys (value of the
    index attribute, range key) for a local secondary index, (range key,) for the table."""

    __slots__ = ("attr", "kind", "range_kind", "keys", "key_of", "absent", "odd")

    def __init__(self, attr: str | None, kind: str, range_kind: str, part: dict) -> None:
        self.attr = attr  # None: the table's own range key
        self.kind = kind
        self.range_kind = range_kind
        self.key_of: dict[DynamoType, tuple[Any, ...]] = {}  # range key -> its key in .keys
        self.absent: set[DynamoType] = set()  # items without the attribute (not in the index)
        self.odd: set[DynamoType] = set()  # items with a value moto would order differently
        keys = []
        for range_key, item in part.items():
            key = self.key(range_key, item)
            if key is None:
                self.absent.add(range_key)
            elif key is _BAD:
                self.odd.add(range_key)
            else:
                self.key_of[range_key] = key
                keys.append(key)
        self.keys = SortedList(keys)

    def key(self, range_key: DynamoType, item: Item) -> Any:
        r = _order_value(range_key, self.range_kind)
        if r is _BAD:
            return _BAD
        if self.attr is None:
            return (r,)
        value = item.attrs.get(self.attr)
        if value is None:
            return None
        v = _order_value(value, self.kind)
        return _BAD if v is _BAD else (v, r)

    def refile(self, range_key: DynamoType, item: Item | None) -> None:
        old = self.key_of.pop(range_key, None)
        if old is not None:
            self.keys.remove(old)
        self.absent.discard(range_key)
        self.odd.discard(range_key)
        if item is None:
            return
        key = self.key(range_key, item)
        if key is None:
            self.absent.add(range_key)
        elif key is _BAD:
            self.odd.add(range_key)
        else:
            self.key_of[range_key] = key
            self.keys.add(key)

    def covers(self, part: dict) -> bool:
        return len(self.key_of) + len(self.absent) + len(self.odd) == len(part)

    def item_at(self, part: dict, key: tuple[Any, ...]) -> Item:
        QUERY_STATS["examined"] += 1
        r = key[-1]
        range_key = DynamoType({self.range_kind: r if self.range_kind == "S" else str(r)})
        item = part.get(range_key)
        if item is None or self.key(range_key, item) != key:
            raise _Stale
        return item


class _Partition:
    """The indexes of one partition (``table.items[hash key]``, a dict by range key)."""

    __slots__ = ("part", "dirty", "big", "indexes")

    def __init__(self, part: dict) -> None:
        self.part = part
        self.dirty: set[DynamoType] = set()  # range keys written since the last query
        self.big = {rk for rk, item in part.items() if item.size() > BIG_ITEM_SIZE}
        self.indexes: dict[tuple[str | None, str, str], _SortIndex] = {}
        QUERY_STATS["built"] += 1

    def sync(self) -> None:
        if not self.dirty:
            return
        part = self.part
        for range_key in self.dirty:
            item = part.get(range_key)
            if item is not None and item.size() > BIG_ITEM_SIZE:
                self.big.add(range_key)
            else:
                self.big.discard(range_key)
            for index in self.indexes.values():
                index.refile(range_key, item)
        QUERY_STATS["synced"] += len(self.dirty)
        self.dirty.clear()

    def index(self, attr: str | None, kind: str, range_kind: str) -> _SortIndex:
        spec = (attr, kind, range_kind)
        index = self.indexes.get(spec)
        if index is None:
            index = self.indexes[spec] = _SortIndex(attr, kind, range_kind, self.part)
        return index


class _TableIndexes:
    __slots__ = ("partitions", "diverged")

    def __init__(self) -> None:
        self.partitions: dict[DynamoType, _Partition] = {}
        self.diverged = False  # an item's key attributes no longer match where it is filed

    def partition(self, hash_key: DynamoType, part: dict) -> _Partition:
        partition = self.partitions.get(hash_key)
        if partition is None or partition.part is not part:
            partition = self.partitions[hash_key] = _Partition(part)
        else:
            partition.sync()
        return partition


#: Per table (weakly: a deleted table takes its indexes with it).
_INDEXES: weakref.WeakKeyDictionary[Table, _TableIndexes] = weakref.WeakKeyDictionary()


def _indexes() -> weakref.WeakKeyDictionary[Table, _TableIndexes]:
    # Those of the copy of this module whose _query is installed (see _unpatched).
    return getattr(Table.query, "_store_indexes", _INDEXES)


def _note_write(table: Table, hash_key: Any, range_key: Any) -> None:
    """An item of ``table`` may have changed (or appeared, or gone)."""
    state = _indexes().get(table)
    if state is None or not state.partitions:
        return
    try:
        partition = state.partitions.get(hash_key)
        if partition is None:
            return
        if range_key is None:
            del state.partitions[hash_key]  # a whole partition replaced: rebuild it when asked
        else:
            partition.dirty.add(range_key)
    except Exception:  # noqa: BLE001 - a key moto could not have filed: start the table over
        state.partitions.clear()


def _put_item(self: Table, item_attrs: dict[str, Any], *args: Any, **kwargs: Any) -> Item:
    """moto's Table.put_item, then tell the query index."""
    try:
        return ORIGINAL_PUT_ITEM(self, item_attrs, *args, **kwargs)
    finally:
        try:
            hash_key = DynamoType(item_attrs[self.hash_key_attr])
            range_key = (
                DynamoType(item_attrs[self.range_key_attr])
                if self.range_key_attr is not None
                else None
            )
        except Exception:  # noqa: BLE001 - moto failed on these same lookups: nothing written
            pass
        else:
            _note_write(self, hash_key, range_key)


def _delete_item(self: Table, hash_key: DynamoType, range_key: DynamoType | None) -> Item | None:
    """moto's Table.delete_item, then tell the query index."""
    try:
        return ORIGINAL_DELETE_ITEM(self, hash_key, range_key)
    finally:
        _note_write(self, hash_key, range_key)


def _update_item(
    self: DynamoDBBackend, table_name: str, key: Any, *args: Any, **kwargs: Any
) -> Item:
    """moto's DynamoDBBackend.update_item (which changes the item in place), then tell the query
    index. Creating an item goes through Table.put_item, which tells it too."""
    try:
        return ORIGINAL_UPDATE_ITEM(self, table_name, key, *args, **kwargs)
    finally:
        _note_update(self, table_name, key)


def _note_update(backend: DynamoDBBackend, table_name: str, key: Any) -> None:
    try:
        table = backend.get_table(table_name)
    except Exception:  # noqa: BLE001 - no such table: nothing changed
        return
    try:
        # The item moto's update_item looked up, found the same way.
        if table.hash_key_attr in key and table.range_key_attr in key:
            hash_key = DynamoType(key[table.hash_key_attr])
            range_key = DynamoType(key[table.range_key_attr])
        elif table.hash_key_attr in key:
            hash_key, range_key = DynamoType(key[table.hash_key_attr]), None
        else:
            hash_key, range_key = DynamoType(key), None
        part = table.items.get(hash_key) if range_key is not None else None  # .get: no new dict
        item = part.get(range_key) if part else None
    except Exception:  # noqa: BLE001 - moto failed on these same lookups: nothing changed
        return
    _note_write(table, hash_key, range_key)
    if item is not None:
        # Legacy AttributeUpdates can overwrite an item's key attributes in place; moto then
        # finds it by those attributes in index queries but by where it is filed in table
        # queries. Leave such a table to moto.
        h, r = item.attrs.get(table.hash_key_attr), item.attrs.get(table.range_key_attr)
        if h is None or r is None or h != hash_key or r != range_key:
            _indexes().setdefault(table, _TableIndexes()).diverged = True


class _Window:
    """A table as moto's Table.query sees it, except that all_items() is the window."""

    __slots__ = ("_table", "_items")

    def __init__(self, table: Table, items: list[Item]) -> None:
        self._table = table
        self._items = items

    def all_items(self) -> list[Item]:
        return list(self._items)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._table, name)


def _query(
    self: Table,
    hash_key: DynamoType | None,
    range_comparison: str | None,
    range_objs: list[DynamoType],
    limit: int,
    exclusive_start_key: dict[str, Any],
    scan_index_forward: bool,
    projection_expressions: list[list[str]] | None,
    index_name: str | None = None,
    consistent_read: bool = False,
    filter_expression: Any = None,
    hash_key_conditions: list[tuple[str, DynamoType]] | None = None,
    range_key_conditions: list[tuple[str, str, list[DynamoType]]] | None = None,
    **filter_kwargs: Any,
) -> tuple[list[Item], int, dict[str, Any] | None]:
    """moto's Table.query, over only the items that can change its answer (see above)."""
    args = (
        hash_key, range_comparison, range_objs, limit, exclusive_start_key, scan_index_forward,
        projection_expressions, index_name, consistent_read, filter_expression,
    )
    kwargs = {
        "hash_key_conditions": hash_key_conditions,
        "range_key_conditions": range_key_conditions,
        **filter_kwargs,
    }
    try:
        window = _query_window(self, args, hash_key_conditions, range_key_conditions, filter_kwargs)
    except Exception:  # noqa: BLE001 - a bug here must cost speed, never a wrong answer
        QUERY_STATS["errors"] += 1
        log.warning("embedded store: query index failed; using moto's full query", exc_info=True)
        window = None
    if window is None:
        QUERY_STATS["fallback"] += 1
        return ORIGINAL_QUERY(self, *args, **kwargs)
    QUERY_STATS["indexed"] += 1
    return ORIGINAL_QUERY(_Window(self, window), *args, **kwargs)  # type: ignore[arg-type]


_query._store_original = ORIGINAL_QUERY  # type: ignore[attr-defined]
_query._store_indexes = _INDEXES  # type: ignore[attr-defined]
_put_item._store_original = ORIGINAL_PUT_ITEM  # type: ignore[attr-defined]
_delete_item._store_original = ORIGINAL_DELETE_ITEM  # type: ignore[attr-defined]
_update_item._store_original = ORIGINAL_UPDATE_ITEM  # type: ignore[attr-defined]


def _local_index(table: Table, index_name: Any) -> tuple[str, str] | None:
    """(attribute, type) of the local secondary index moto's query would use, if it is a plain
    one: the table's hash key and one range attribute of type S or N."""
    found = [index for index in table.all_indexes() if index.name == index_name]
    if len(found) != 1 or not isinstance(found[0], LocalSecondaryIndex):
        return None
    index = found[0]
    if any(index is g for g in table.global_indexes or []):
        return None
    hashes = [k.get("AttributeName") for k in index.schema if k.get("KeyType") == "HASH"]
    ranges = [k.get("AttributeName") for k in index.schema if k.get("KeyType") == "RANGE"]
    if len(index.schema) != 2 or hashes != [table.hash_key_attr] or len(ranges) != 1:
        return None
    attr = ranges[0]
    if not isinstance(attr, str) or attr == table.hash_key_attr:
        return None
    kinds = [a.get("AttributeType") for a in table.attr if a.get("AttributeName") == attr]
    if len(kinds) != 1 or kinds[0] not in _SORT_TYPES:
        return None
    return attr, kinds[0]


def _query_window(
    table: Table,
    args: tuple[Any, ...],
    hash_key_conditions: Any,
    range_key_conditions: Any,
    filter_kwargs: dict[str, Any],
) -> list[Item] | None:
    """The items moto's Table.query needs to see to give its answer, or None: let it see all."""
    (hash_key, op, range_objs, limit, start_key, forward, _projection, index_name, _consistent,
     _filter) = args
    if filter_kwargs or type(forward) is not bool:
        return None
    if limit is not None and (type(limit) is not int or limit < 1):
        return None
    if op is not None and op not in _RANGE_OPS:
        return None
    registry = _indexes()
    state = registry.get(table)
    if state is not None and state.diverged:
        return None

    if table.range_key_attr is None:
        # One item per hash key: moto's walk over that one item is already cheap.
        if index_name is not None or op is not None or range_key_conditions:
            return None
        if not _is_plain_key(hash_key):
            return None
        item = table.items.get(hash_key)
        return [item] if isinstance(item, Item) else []

    range_kind = table.range_key_type
    if range_kind not in _SORT_TYPES:
        return None
    if index_name is None:
        attr, kind, cond_attr = None, range_kind, table.range_key_attr
        partition_key = hash_key  # what moto's table query matches items on
    else:
        found = _local_index(table, index_name)
        if found is None:
            return None
        attr, kind = found
        cond_attr = attr
        # moto's index query matches items on hash_key_conditions alone.
        if type(hash_key_conditions) is not list or len(hash_key_conditions) != 1:
            return None
        name, partition_key = hash_key_conditions[0]
        if name != table.hash_key_attr:
            return None
    if not _is_plain_key(partition_key):
        return None
    if range_key_conditions:
        if type(range_key_conditions) is not list or len(range_key_conditions) != 1:
            return None
        name, comparison, _values = range_key_conditions[0]
        if name != cond_attr or comparison != op:
            return None

    values: list[Any] = []
    if op is not None:
        if type(range_objs) is not list or len(range_objs) != (2 if op == "BETWEEN" else 1):
            return None
        values = [_order_value(v, kind) for v in range_objs]
        if any(v is _BAD for v in values) or (op == "BEGINS_WITH" and kind != "S"):
            return None

    start: tuple[Any, ...] | None = None
    if start_key is not None:
        # moto compares items with it on hash key, index attribute, range key, in that order.
        if type(start_key) is not dict:
            return None
        h = _wire_key(start_key.get(table.hash_key_attr))
        if h is None or not _is_plain_key(h) or h != partition_key:
            return None
        r = _order_value(_wire_key(start_key.get(table.range_key_attr)), range_kind)
        if r is _BAD:
            return None
        if attr is None:
            start = (r,)
        else:
            v = _order_value(_wire_key(start_key.get(attr)), kind)
            if v is _BAD:
                return None
            start = (v, r)

    part = table.items.get(partition_key)
    if not part:
        return []
    if state is None:
        state = registry.setdefault(table, _TableIndexes())
    for _attempt in range(2):
        partition = state.partition(partition_key, part)
        index = partition.index(attr, kind, range_kind)
        if partition.big or index.odd:
            return None
        try:
            if not index.covers(part):
                raise _Stale
            return _window(index, part, op, values, start, limit, forward)
        except _Stale:
            QUERY_STATS["stale"] += 1
            log.warning("embedded store: query index of %s was out of date; rebuilt", table.name)
            state.partitions.pop(partition_key, None)
    return None


def _bounds(keys: SortedList, op: str | None, values: list[Any]) -> tuple[int, int]:
    """Positions [lo, hi) of the keys whose first component meets the range condition."""
    n = len(keys)
    if op is None:
        return 0, n
    x = values[0]
    if op == "=":
        return keys.bisect_left((x,)), keys.bisect_left((x, _TOP))
    if op == "<":
        return 0, keys.bisect_left((x,))
    if op == "<=":
        return 0, keys.bisect_left((x, _TOP))
    if op == ">":
        return keys.bisect_left((x, _TOP)), n
    if op == ">=":
        return keys.bisect_left((x,)), n
    lo = keys.bisect_left((x,))
    if op == "BETWEEN":
        return lo, max(lo, keys.bisect_left((values[1], _TOP)))
    end = _prefix_end(x)  # BEGINS_WITH
    return lo, (n if end is None else max(lo, keys.bisect_left((end,))))


def _window(
    index: _SortIndex,
    part: dict,
    op: str | None,
    values: list[Any],
    start: tuple[Any, ...] | None,
    limit: int | None,
    forward: bool,
) -> list[Item]:
    keys = index.keys
    n = len(keys)
    lo, hi = _bounds(keys, op, values)
    if forward:
        first = 0 if start is None else keys.bisect_left(start + (_TOP,))  # after start
        matching = keys.islice(max(first, lo), max(first, lo, hi))
        after = keys.islice(max(first, hi), n)
    else:
        last = n if start is None else keys.bisect_left(start)  # before start
        matching = keys.islice(lo, max(lo, min(last, hi)), reverse=True)
        after = keys.islice(0, min(last, lo), reverse=True)
    window: list[Item] = []
    taken = size = 0
    for key in matching:
        item = index.item_at(part, key)
        window.append(item)
        item_size = item.size()
        if taken == limit or size + item_size > RESULT_SIZE_LIMIT:
            return window  # moto's walk stops at this item
        taken += 1
        size += item_size
    if taken == limit:
        for key in after:  # the walk stops at the next item, if there is one
            window.append(index.item_at(part, key))
            break
    elif size + BIG_ITEM_SIZE > RESULT_SIZE_LIMIT:
        window.extend(index.item_at(part, key) for key in after)  # any may stop it on size
    return window


# --------------------------------------------------------------------------------------------
# Snapshot encoding
# --------------------------------------------------------------------------------------------


def _encode_binary(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return {"b64": base64.b64encode(bytes(value)).decode("ascii")}
    return value


def _decode_binary(value: Any) -> Any:
    if isinstance(value, dict):
        return base64.b64decode(value["b64"])
    return value


def _encode_value(dt: DynamoType) -> dict[str, Any]:
    kind, value = dt.type, dt.value
    if kind == "L":
        return {"L": [_encode_value(v) for v in value]}
    if kind == "M":
        return {"M": {k: _encode_value(v) for k, v in value.items()}}
    if kind == "B":
        return {"B": _encode_binary(value)}
    if kind == "BS":
        return {"BS": [_encode_binary(v) for v in value]}
    return {kind: value}


def _decode_value(wire: dict[str, Any]) -> dict[str, Any]:
    (kind, value), = wire.items()
    if kind == "L":
        return {"L": [_decode_value(v) for v in value]}
    if kind == "M":
        return {"M": {k: _decode_value(v) for k, v in value.items()}}
    if kind == "B":
        return {"B": _decode_binary(value)}
    if kind == "BS":
        return {"BS": [_decode_binary(v) for v in value]}
    return wire


def _encode_item(item: Item) -> dict[str, Any]:
    return {name: _encode_value(dt) for name, dt in item.attrs.items()}


def _table_items(table: Table) -> Iterator[Item]:
    for value in table.items.values():
        if table.range_key_attr is not None:
            yield from value.values()
        else:
            yield value


def _insert_item(table: Table, encoded: dict[str, Any]) -> None:
    """Put an item from a snapshot straight into the table (it was validated when first written)."""
    attrs = LimitedSizeDict.__new__(LimitedSizeDict)
    dict.__init__(attrs)
    for name, wire in encoded.items():
        dict.__setitem__(attrs, name, DynamoType(_decode_value(wire)))
    hash_key = attrs[table.hash_key_attr]
    range_key = attrs[table.range_key_attr] if table.range_key_attr is not None else None
    item = Item(hash_key, range_key, {})
    item.attrs = attrs
    if range_key is not None:
        table.items[hash_key][range_key] = item
    else:
        table.items[hash_key] = item
    _note_write(table, hash_key, range_key)


def _dump_table(account: str, region: str, table: Table) -> dict[str, Any]:
    return {
        "account": account,
        "region": region,
        "name": table.name,
        "schema": table.schema,
        "attr": table.attr,
        "billing_mode": table.billing_mode,
        "throughput": table.throughput,
        "warm_throughput": table.warm_throughput,
        "lsis": [
            {"IndexName": i.name, "KeySchema": i.schema, "Projection": i.projection}
            for i in table.indexes
        ],
        "gsis": [
            {
                "IndexName": g.name,
                "KeySchema": g.schema,
                "Projection": g.projection,
                "IndexStatus": g.status,
                "ProvisionedThroughput": g.throughput,
                "WarmThroughput": g.warm_throughput,
            }
            for g in table.global_indexes
        ],
        "created_at": table.created_at.isoformat(),
        "tags": table.tags,
        "ttl": table.ttl,
        "stream_specification": table.stream_specification,
        "latest_stream_label": table.latest_stream_label,
        "continuous_backups": table.continuous_backups,
        "sse_specification": table.sse_specification,
        "deletion_protection_enabled": table.deletion_protection_enabled,
    }


def _restore_table(backend: DynamoDBBackend, d: dict[str, Any]) -> Table:
    table = Table(
        d["name"],
        account_id=backend.account_id,
        region=backend.region_name,
        schema=d["schema"],
        attr=d["attr"],
        billing_mode=d["billing_mode"],
        indexes=d["lsis"],
        global_indexes=[
            {k: g[k] for k in ("IndexName", "KeySchema", "Projection")} for g in d["gsis"]
        ],
        tags=d["tags"],
        deletion_protection_enabled=d["deletion_protection_enabled"],
    )
    table.throughput = d["throughput"]
    table.warm_throughput = d["warm_throughput"]
    for gsi, g in zip(table.global_indexes, d["gsis"]):
        assert isinstance(gsi, GlobalSecondaryIndex)
        gsi.status = g["IndexStatus"]
        gsi.throughput = g["ProvisionedThroughput"]
        gsi.warm_throughput = g["WarmThroughput"]
    table.created_at = datetime.datetime.fromisoformat(d["created_at"])
    table.ttl = d["ttl"]
    table.stream_specification = d["stream_specification"]
    table.latest_stream_label = d["latest_stream_label"]
    if d["stream_specification"] and d["stream_specification"].get("StreamEnabled"):
        table.stream_shard = StreamShard(backend.account_id, table)
    table.continuous_backups = d["continuous_backups"]
    table.sse_specification = d["sse_specification"]
    backend.tables[table.name] = table
    return table


def _table_meta(table: Table) -> dict[str, Any]:
    """What CreateTable/UpdateTable set from the clock, so a replay gives the same table."""
    return {
        "name": table.name,
        "created_at": table.created_at.isoformat(),
        "latest_stream_label": table.latest_stream_label,
    }


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


# --------------------------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------------------------


class _Request(_MotoRequest):
    from_wsgi_server = True


class _Handler(DynamoHandler):
    """moto's DynamoDB handler, bound to one store's backends instead of moto's global ones."""

    def __init__(self, store: EmbeddedStore, forced: tuple[str, str] | None = None) -> None:
        super().__init__()
        self._store = store
        self._forced = forced  # (account, region) when replaying the log

    @property
    def dynamodb_backend(self) -> DynamoDBBackend:  # type: ignore[override]
        return self._store._backend(self.current_account, self.region)

    def get_current_account(self) -> str:
        if self._forced is not None:
            return self._forced[0]
        return super().get_current_account()

    def get_region_from_url(self, request: Any, full_url: str) -> str:
        if self._forced is not None:
            return self._forced[1]
        return super().get_region_from_url(request, full_url)


class _RequestHandler(WSGIRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; set here so werkzeug leaves its own class alone
    timeout = 300  # an idle keep-alive connection is closed after this many seconds
    quiet = True

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        if not self.quiet:
            super().log_request(code, size)


class _Server(ThreadedWSGIServer):
    daemon_threads = True

    def __init__(self, host: str, port: int, app: Any, handler: type, backlog: int) -> None:
        self.request_queue_size = backlog  # read by listen() during __init__
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(host, port, app, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _error(status: int, code: str, message: str) -> Response:
    body = _dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": message})
    return Response(body, status=status, content_type="application/x-amz-json-1.0")


# The one lock every store applies requests under (and compacts, replays and resets under).
_apply_lock = threading.RLock()


# --------------------------------------------------------------------------------------------
# The store
# --------------------------------------------------------------------------------------------


class EmbeddedStore:
    """A local DynamoDB endpoint; see the module docstring."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        fresh: bool = False,
        compact_every: int = 1000,
        fsync: bool = False,
        backlog: int = 128,
        quiet: bool = True,
    ) -> None:
        self.data_dir = os.fspath(data_dir) if data_dir is not None else None
        self.host = host
        self.port = port
        self.fresh = fresh
        self.compact_every = compact_every
        self.fsync = fsync
        self.backlog = backlog
        self.quiet = quiet
        self._backends: dict[tuple[str, str], DynamoDBBackend] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lock_fd: int | None = None
        self._log_file: Any = None
        self._seq = 0
        self._log_records = 0
        self._snapshot_items = 0
        self._url: str | None = None
        #: Counters, for tests and curious people.
        self.stats = {"compactions": 0, "replayed": 0, "torn_tail_ignored": 0}

    # ---- lifecycle -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("the store is not running; call start() first")
        return self._url

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def lock(self) -> threading.RLock:
        """Hold this to read or change backends directly (no request is applied meanwhile)."""
        return _apply_lock

    def start(self) -> str:
        if self._server is not None:
            return self.url
        apply_patches()
        with _apply_lock:
            self._backends = {}
            if self.data_dir is not None:
                self._open_data_dir()
        handler = type("_StoreRequestHandler", (_RequestHandler,), {"quiet": self.quiet})
        try:
            server = _Server(self.host, self.port, self._wsgi, handler, self.backlog)
        except SystemExit:  # werkzeug exits the process on a bind error; say it instead
            self._close_data_dir()
            raise OSError(f"cannot listen on {self.host}:{self.port}") from None
        except BaseException:
            self._close_data_dir()
            raise
        self._server = server
        port = server.socket.getsockname()[1]
        shown = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        if ":" in shown:
            shown = f"[{shown}]"
        self._url = f"http://{shown}:{port}"
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"EmbeddedStore:{port}",
            daemon=True,
        )
        self._thread.start()
        return self._url

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        with _apply_lock:
            self._close_data_dir()
        self._url = None

    def __enter__(self) -> EmbeddedStore:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def reset(self) -> None:
        """Empty the store: every table goes, in memory and in data_dir."""
        with _apply_lock:
            self._backends = {}
            if self.data_dir is None:
                return
            if self._log_file is not None:
                self.compact()  # an empty snapshot, atomically; the log's records are all older
                return
            self._lock_data_dir()
            try:
                self._wipe_files()
            finally:
                self._close_data_dir()

    # ---- direct access (preloading, tests) -----------------------------------------------

    def backend(
        self, region: str = "us-east-1", account_id: str = DEFAULT_ACCOUNT_ID
    ) -> DynamoDBBackend:
        """The moto backend for (account, region). Hold ``store.lock`` while using it. Direct
        writes bypass the log: call ``compact()`` afterwards to keep them in data_dir."""
        return self._backend(account_id, region)

    def _backend(self, account_id: str, region: str) -> DynamoDBBackend:
        key = (account_id, region)
        backend = self._backends.get(key)
        if backend is None:
            backend = self._backends[key] = DynamoDBBackend(region, account_id)
        return backend

    # ---- request path --------------------------------------------------------------------

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self._respond(environ)(environ, start_response)

    def _respond(self, environ: dict[str, Any]) -> Response:
        if environ.get("REQUEST_METHOD") != "POST":
            return Response("healthy: embedded dynamodb store", content_type="text/plain")
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith(TARGET_PREFIX):
            return _error(400, "UnknownOperationException", f"unsupported target {target!r}")
        request = _Request(environ)
        with _apply_lock:
            if self._server is None:
                return _error(503, "ServiceUnavailable", "the store is stopping")
            try:
                status, headers, body = self._apply(request, target[len(TARGET_PREFIX):])
            except Exception:  # a moto bug must not reach the client as a stack trace
                log.exception("embedded store: %s failed", target)
                return _error(500, "InternalServerError", "internal error in the local store")
        return Response(body, status=status, headers=headers)

    def _apply(
        self, request: _Request, op: str, forced: tuple[str, str] | None = None
    ) -> tuple[int, dict[str, Any], Any]:
        """Apply one request (caller holds the lock) and log it if it changed data."""
        handler = _Handler(self, forced)
        try:
            status, headers, body = handler._dispatch(
                request, request.raw_url, dict(request.headers)
            )
        except (NotImplementedError, OperationNotFoundError):
            return 400, {}, _dumps(
                {
                    "__type": "com.amazonaws.dynamodb.v20120810#UnknownOperationException",
                    "message": f"{op} is not supported by the local store",
                }
            )
        if forced is None and status == 200 and self._log_file is not None:
            if op not in READ_ONLY_OPERATIONS and not _is_select(op, request):
                self._append(handler, op, request)
        return status, headers, body

    def _append(self, handler: _Handler, op: str, request: _Request) -> None:
        self._seq += 1
        record: dict[str, Any] = {
            "seq": self._seq,
            "account": handler.current_account,
            "region": handler.region,
            "op": op,
            "body": json.loads(request.get_data() or b"{}"),
        }
        if op in ("CreateTable", "UpdateTable"):
            table = handler.dynamodb_backend.tables.get(record["body"].get("TableName"))
            if table is not None:
                record["meta"] = _table_meta(table)
        line = _dumps(record) + "\n"
        self._log_file.write(line)
        self._log_file.flush()
        if self.fsync:
            os.fsync(self._log_file.fileno())
        self._log_records += 1
        if self._log_records >= max(
            self.compact_every, self._snapshot_items // ITEMS_PER_LOG_RECORD
        ):
            self.compact()

    # ---- persistence ---------------------------------------------------------------------

    def _path(self, name: str) -> str:
        assert self.data_dir is not None
        return os.path.join(self.data_dir, name)

    def _remove(self, name: str) -> None:
        try:
            os.remove(self._path(name))
        except FileNotFoundError:
            pass

    def _wipe_files(self) -> None:
        for name in (SNAPSHOT_NAME, SNAPSHOT_NAME + ".tmp", LOG_NAME):
            self._remove(name)

    def _open_data_dir(self) -> None:
        self._lock_data_dir()
        try:
            if self.fresh:
                self._wipe_files()
            self._remove(SNAPSHOT_NAME + ".tmp")
            self._load_snapshot()
            replayed, torn = self._replay_log()
            self._log_file = open(self._path(LOG_NAME), "a", encoding="utf-8")
            if replayed or torn or not os.path.exists(self._path(SNAPSHOT_NAME)):
                self.compact()
        except BaseException:
            self._close_data_dir()
            raise

    def _lock_data_dir(self) -> None:
        assert self.data_dir is not None
        os.makedirs(self.data_dir, exist_ok=True)
        fd = os.open(self._path(LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise RuntimeError(
                f"{self.data_dir} is in use by another running store (it holds {LOCK_NAME})"
            ) from None
        self._lock_fd = fd

    def _close_data_dir(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def _load_snapshot(self) -> None:
        self._seq = 0
        self._snapshot_items = 0
        path = self._path(SNAPSHOT_NAME)
        if not os.path.exists(path):
            return
        table: Table | None = None
        ended = False
        with open(path, encoding="utf-8") as f:
            try:
                header = json.loads(f.readline())
                if header.get("format") != SNAPSHOT_FORMAT:
                    raise StoreCorruptError(f"{path}: unknown snapshot format {header!r}")
                self._seq = header["seq"]
                for line in f:
                    entry = json.loads(line)
                    if "item" in entry:
                        assert table is not None
                        _insert_item(table, entry["item"])
                    elif "table" in entry:
                        d = entry["table"]
                        table = _restore_table(self._backend(d["account"], d["region"]), d)
                    elif "end" in entry:
                        ended = True
                        self._snapshot_items = entry["end"]["items"]
            except (ValueError, KeyError, AssertionError) as e:
                raise StoreCorruptError(f"{path} cannot be read: {e}") from e
        if not ended:
            raise StoreCorruptError(f"{path} is incomplete (no end line)")

    def _replay_log(self) -> tuple[int, bool]:
        """Apply the log's records above the snapshot's seq. Returns (applied, torn tail seen)."""
        path = self._path(LOG_NAME)
        if not os.path.exists(path):
            return 0, False
        with open(path, "rb") as f:
            lines = f.read().split(b"\n")
        # The text after the last newline is a line whose write was cut short (or nothing).
        complete, tail = lines[:-1], lines[-1]
        torn = bool(tail)
        records = []
        for n, line in enumerate(complete, 1):
            try:
                records.append(json.loads(line))
            except ValueError as e:
                if n == len(complete) and not tail:
                    torn = True  # the last line is garbage: a torn write with its newline
                    break
                raise StoreCorruptError(f"{path} line {n} cannot be read: {e}") from e
        applied = 0
        for record in records:
            if record["seq"] <= self._seq:
                continue  # already in the snapshot (a crash came between rename and truncate)
            self._replay(record)
            self._seq = record["seq"]
            applied += 1
        self.stats["replayed"] += applied
        if torn:
            self.stats["torn_tail_ignored"] += 1
            log.warning("embedded store: ignored a torn last line in %s", path)
        return applied, torn

    def _replay(self, record: dict[str, Any]) -> None:
        op = record["op"]
        environ = EnvironBuilder(
            method="POST",
            path="/",
            base_url="http://localhost/",
            headers={
                "X-Amz-Target": TARGET_PREFIX + op,
                "Content-Type": "application/x-amz-json-1.0",
            },
            data=_dumps(record["body"]).encode("utf-8"),
        ).get_environ()
        status, _, body = self._apply(
            _Request(environ), op, forced=(record["account"], record["region"])
        )
        if status != 200:
            log.warning(
                "embedded store: replaying log record %s (%s) gave %s: %s",
                record["seq"], op, status, body,
            )
            return
        meta = record.get("meta")
        if meta:
            backend = self._backend(record["account"], record["region"])
            table = backend.tables.get(meta["name"])
            if table is not None:
                table.created_at = datetime.datetime.fromisoformat(meta["created_at"])
                table.latest_stream_label = meta["latest_stream_label"]

    def compact(self) -> None:
        """Write every table and item to a new snapshot, then empty the log."""
        if self.data_dir is None:
            return
        with _apply_lock:
            if self._log_file is None:
                raise RuntimeError("the store is not running; start() it first")
            tmp = self._path(SNAPSHOT_NAME + ".tmp")
            tables = items = 0
            with open(tmp, "w", encoding="utf-8") as f:
                header = {"format": SNAPSHOT_FORMAT, "moto": moto.__version__, "seq": self._seq}
                f.write(_dumps(header) + "\n")
                for (account, region), backend in self._backends.items():
                    for table in backend.tables.values():
                        tables += 1
                        f.write(_dumps({"table": _dump_table(account, region, table)}) + "\n")
                        lines = []
                        for item in _table_items(table):
                            lines.append(_dumps({"item": _encode_item(item)}))
                            if len(lines) >= 1000:
                                f.write("\n".join(lines) + "\n")
                                lines = []
                                items += 1000
                        if lines:
                            f.write("\n".join(lines) + "\n")
                            items += len(lines)
                f.write(_dumps({"end": {"tables": tables, "items": items}}) + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self._path(SNAPSHOT_NAME))
            dir_fd = os.open(self.data_dir, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
            self._log_file.truncate(0)
            self._log_file.flush()
            self._snapshot_items = items
            self._log_records = 0
            self.stats["compactions"] += 1


def _is_select(op: str, request: _Request) -> bool:
    if op != "ExecuteStatement":
        return False
    try:
        statement = json.loads(request.get_data() or b"{}").get("Statement", "")
    except ValueError:
        return False
    return statement.lstrip().upper().startswith("SELECT")
