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
  Both are pinned to moto ``MOTO_VERSION``: ``apply_patches`` raises ``MotoPinError`` if moto's
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
from collections.abc import Iterator
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
from moto.dynamodb.models.table import GlobalSecondaryIndex, StreamShard, Table
from moto.dynamodb.responses import DynamoHandler
from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Response

__all__ = [
    "EmbeddedStore",
    "MotoPinError",
    "StoreCorruptError",
    "apply_patches",
    "MOTO_VERSION",
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
}


def _pinned_objects() -> dict[str, Any]:
    return {
        "moto.dynamodb.models.DynamoDBBackend.transact_write_items": ORIGINAL_TRANSACT_WRITE_ITEMS,
        "moto.core.common_models.BaseModel.__new__": _ORIGINAL_BASEMODEL_NEW,
        "moto.dynamodb.models.table.Table.__init__": Table.__init__,
        "moto.dynamodb.models.table.Table.put_item": Table.put_item,
        "moto.dynamodb.models.table.Table.get_item": Table.get_item,
        "moto.dynamodb.models.table.Table.delete_item": Table.delete_item,
        "moto.dynamodb.models.DynamoDBBackend.get_keys_value": DynamoDBBackend.get_keys_value,
        "moto.dynamodb.responses.DynamoHandler.dynamodb_backend": DynamoHandler.dynamodb_backend.fget,
        "moto.core.responses.BaseResponse.get_current_account": BaseResponse.get_current_account,
        "moto.core.responses.BaseResponse.get_region_from_url": BaseResponse.get_region_from_url,
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

_patch_lock = threading.Lock()
_patched = False


def check_moto_pin() -> None:
    """Raise MotoPinError unless moto is MOTO_VERSION with the exact code the patches expect."""
    if moto.__version__ != MOTO_VERSION:
        raise MotoPinError(
            f"devserver.store is pinned to moto {MOTO_VERSION} but moto {moto.__version__} is "
            "installed. Re-check its patches against the new moto (DynamoDBBackend."
            "transact_write_items, BaseModel.__new__, Table) and update PINNED_SOURCES and "
            "MOTO_VERSION, then run tests/store."
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
