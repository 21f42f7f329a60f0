"""The store's patches to moto: pinned to one moto, identical in behaviour to the code they
replace, and without the per-transaction table copies and the instance tracking they remove."""

import copy

import moto
import pytest
from botocore.exceptions import ClientError
from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.model_instances import model_data
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import Item
from moto.dynamodb.models.table import Table

import devserver.store as store_module
from devserver.store import (
    MOTO_VERSION,
    ORIGINAL_TRANSACT_WRITE_ITEMS,
    MotoPinError,
    apply_patches,
    check_moto_pin,
)
from tests.store.store_helpers import create_table

apply_patches()
PATCHED_TRANSACT_WRITE_ITEMS = store_module._transact_write_items


# ---- pinning --------------------------------------------------------------------------------


def test_moto_is_the_pinned_version_with_the_pinned_code():
    assert moto.__version__ == MOTO_VERSION == "5.2.5"
    check_moto_pin()  # raises MotoPinError if any pinned source moved
    assert DynamoDBBackend.transact_write_items is PATCHED_TRANSACT_WRITE_ITEMS


def test_another_moto_version_is_refused(monkeypatch):
    monkeypatch.setattr(moto, "__version__", "5.2.6")
    with pytest.raises(MotoPinError, match="pinned to moto 5.2.5"):
        check_moto_pin()


def test_moved_moto_code_is_refused(monkeypatch):
    name = "moto.dynamodb.models.DynamoDBBackend.transact_write_items"
    monkeypatch.setitem(store_module.PINNED_SOURCES, name, "0" * 64)
    with pytest.raises(MotoPinError, match="transact_write_items"):
        check_moto_pin()


def test_a_table_has_exactly_the_state_the_snapshot_keeps():
    # A new attribute on moto's Table would be state that snapshots silently drop.
    table = Table(
        "t",
        account_id=DEFAULT_ACCOUNT_ID,
        region="us-east-1",
        schema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        attr=[{"AttributeName": "pk", "AttributeType": "S"}],
    )
    derived = {"account_id", "region_name", "range_key_attr", "hash_key_attr", "range_key_type",
               "hash_key_type", "table_key_attrs", "table_arn", "items"}
    not_kept = {"lambda_event_source_mappings", "stream_shard"}  # stream records are not kept
    kept = set(store_module._dump_table(DEFAULT_ACCOUNT_ID, "us-east-1", table)) - {"account", "region"}
    renamed = {"lsis": "indexes", "gsis": "global_indexes"}
    kept = {renamed.get(k, k) for k in kept}
    assert set(vars(table)) == kept | derived | not_kept


# ---- same behaviour as moto's transact_write_items ---------------------------------------


def new_backend():
    backend = DynamoDBBackend("us-east-1", DEFAULT_ACCOUNT_ID)
    for name, has_range in (("wallets", False), ("entries", True)):
        schema = [{"AttributeName": "pk", "KeyType": "HASH"}]
        attr = [{"AttributeName": "pk", "AttributeType": "S"}]
        if has_range:
            schema.append({"AttributeName": "sk", "KeyType": "RANGE"})
            attr.append({"AttributeName": "sk", "AttributeType": "S"})
        backend.create_table(
            name, schema=schema, throughput=None, attr=attr, global_indexes=None, indexes=None,
            streams=None, billing_mode="PAY_PER_REQUEST", sse_specification=None, tags=[],
            deletion_protection_enabled=False, warm_throughput=None,
        )
    backend.put_item("wallets", {"pk": {"S": "w1"}, "bal": {"N": "10"}, "tag": {"S": "old"}})
    backend.put_item("wallets", {"pk": {"S": "w2"}, "bal": {"N": "0"}})
    backend.put_item("entries", {"pk": {"S": "w1"}, "sk": {"S": "e1"}, "amount": {"N": "10"}})
    return backend


def charge(wallet, cost, **extra):
    return {
        "Update": {
            "TableName": "wallets",
            "Key": {"pk": {"S": wallet}},
            "UpdateExpression": "SET bal = bal - :c",
            "ConditionExpression": "bal >= :c",
            "ExpressionAttributeValues": {":c": {"N": str(cost)}},
            **extra,
        }
    }


def entry(wallet, sk, **extra):
    return {"Put": {"TableName": "entries", "Item": {"pk": {"S": wallet}, "sk": {"S": sk}}, **extra}}


CASES = {
    "success across two tables": [charge("w1", 3), entry("w1", "e2")],
    "condition fails, ALL_OLD returns the item": [
        entry("w1", "e2"),
        charge("w2", 5, ReturnValuesOnConditionCheckFailure="ALL_OLD"),
    ],
    "condition fails without ALL_OLD": [charge("w1", 3), charge("w2", 5)],
    "put condition fails on an existing item, ALL_OLD": [
        charge("w1", 1),
        entry("w1", "e1", ConditionExpression="attribute_not_exists(sk)",
              ReturnValuesOnConditionCheckFailure="ALL_OLD"),
    ],
    "two operations on one item is a ValidationException": [
        charge("w1", 1),
        entry("w1", "e9"),
        {"Delete": {"TableName": "wallets", "Key": {"pk": {"S": "w1"}}}},
    ],
    "failure rolls back earlier updates, puts and deletes": [
        charge("w1", 4),
        {"Update": {"TableName": "wallets", "Key": {"pk": {"S": "w3"}},
                    "UpdateExpression": "SET bal = :z", "ExpressionAttributeValues": {":z": {"N": "0"}}}},
        entry("w9", "new-partition"),
        {"Delete": {"TableName": "entries", "Key": {"pk": {"S": "w1"}, "sk": {"S": "e1"}}}},
        {"ConditionCheck": {"TableName": "wallets", "Key": {"pk": {"S": "w2"}},
                            "ConditionExpression": "bal > :z",
                            "ExpressionAttributeValues": {":z": {"N": "0"}}}},
    ],
    "delete and condition check succeed": [
        {"Delete": {"TableName": "entries", "Key": {"pk": {"S": "w1"}, "sk": {"S": "e1"}}}},
        {"ConditionCheck": {"TableName": "wallets", "Key": {"pk": {"S": "w1"}},
                            "ConditionExpression": "bal = :b",
                            "ExpressionAttributeValues": {":b": {"N": "10"}}}},
    ],
    "missing table is a cancellation reason": [
        charge("w1", 1),
        {"Put": {"TableName": "nope", "Item": {"pk": {"S": "x"}}}},
    ],
    "bad operand type mid-transaction is a ValidationException, rolled back": [
        entry("w1", "e5"),
        {"Update": {"TableName": "wallets", "Key": {"pk": {"S": "w1"}},
                    "UpdateExpression": "SET bal = bal + :s",
                    "ExpressionAttributeValues": {":s": {"S": "text"}}}},
    ],
    "more than 100 operations": [entry("w1", f"e{i}") for i in range(101)],
}


def table_state(backend):
    """Every item, and the shape of the item maps (partitions, including empty ones)."""
    state = {}
    for name, table in backend.tables.items():
        items = []
        for key, value in table.items.items():
            if table.range_key_attr:
                items.append((repr(key), sorted((repr(k), repr(v.to_json())) for k, v in value.items())))
            else:
                items.append((repr(key), repr(value.to_json())))
        state[name] = sorted(items)
    return state


def outcome(function, transact_items):
    backend = new_backend()
    try:
        function(backend, copy.deepcopy(transact_items))
        error = None
    except Exception as e:  # noqa: BLE001 - the exception is what is compared
        error = (type(e).__name__, getattr(e, "error_type", None), getattr(e, "message", None),
                 getattr(e, "description", None))
    return error, table_state(backend)


@pytest.mark.parametrize("case", list(CASES))
def test_patched_transact_write_items_behaves_exactly_like_moto(case):
    upstream = outcome(ORIGINAL_TRANSACT_WRITE_ITEMS, CASES[case])
    patched = outcome(PATCHED_TRANSACT_WRITE_ITEMS, CASES[case])
    assert patched == upstream


def test_the_cases_cover_what_they_claim():
    # So that the comparison above compares something: these are moto's answers.
    ok = outcome(ORIGINAL_TRANSACT_WRITE_ITEMS, CASES["success across two tables"])
    assert ok[0] is None
    all_old = outcome(ORIGINAL_TRANSACT_WRITE_ITEMS, CASES["condition fails, ALL_OLD returns the item"])
    assert all_old[0][0] == "TransactionCanceledException"
    assert '"Item": {"pk": {"S": "w2"}, "bal": {"N": "0"}}' in all_old[0][3]
    assert all_old[1] == table_state(new_backend())  # rolled back
    dup = outcome(ORIGINAL_TRANSACT_WRITE_ITEMS, CASES["two operations on one item is a ValidationException"])
    assert dup[0][:3] == (
        "MultipleTransactionsException",
        "com.amazonaws.dynamodb.v20120810#ValidationException",
        "Transaction request cannot include multiple operations on one item",
    )
    assert dup[1] == table_state(new_backend())
    rolled = outcome(ORIGINAL_TRANSACT_WRITE_ITEMS, CASES["failure rolls back earlier updates, puts and deletes"])
    assert rolled[0][0] == "TransactionCanceledException"
    assert rolled[1] == table_state(new_backend())


def test_cancellation_reasons_over_http(store, client):
    create_table(client, "wallets")
    create_table(client, "entries", range_key="sk")
    client.put_item(TableName="wallets", Item={"pk": {"S": "w2"}, "bal": {"N": "0"}})

    with pytest.raises(ClientError) as e:
        client.transact_write_items(
            TransactItems=[entry("w2", "e1"), charge("w2", 5, ReturnValuesOnConditionCheckFailure="ALL_OLD")]
        )
    assert e.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert e.value.response["CancellationReasons"] == [
        {"Code": "None"},
        {
            "Code": "ConditionalCheckFailed",
            "Message": "The conditional request failed",
            "Item": {"pk": {"S": "w2"}, "bal": {"N": "0"}},
        },
    ]
    assert "Item" not in client.get_item(TableName="entries", Key={"pk": {"S": "w2"}, "sk": {"S": "e1"}})

    with pytest.raises(ClientError) as e:
        client.transact_write_items(TransactItems=[charge("w2", 0), charge("w2", 0)])
    assert e.value.response["Error"] == {
        "Code": "ValidationException",
        "Message": "Transaction request cannot include multiple operations on one item",
    }


# ---- cost does not grow with table size ------------------------------------------------------


@pytest.fixture
def copies(monkeypatch):
    """Count deep copies of tables and of items."""
    counts = {"Table": 0, "Item": 0}
    item_deepcopy = Item.__deepcopy__

    def count_item(self, memo):
        counts["Item"] += 1
        return item_deepcopy(self, memo)

    def count_table(self, memo):
        counts["Table"] += 1
        result = object.__new__(type(self))
        memo[id(self)] = result
        for k, v in self.__dict__.items():
            setattr(result, k, copy.deepcopy(v, memo))
        return result

    monkeypatch.setattr(Item, "__deepcopy__", count_item)
    monkeypatch.setattr(Table, "__deepcopy__", count_table, raising=False)
    return counts


def backend_with_entries(n):
    backend = new_backend()
    for i in range(n):
        backend.put_item("entries", {"pk": {"S": "w1"}, "sk": {"S": f"pre{i:05d}"}})
    return backend


def copies_per_transaction(function, n_entries, copies):
    backend = backend_with_entries(n_entries)
    before = dict(copies)
    function(backend, [charge("w1", 1), entry("w1", "new")])  # succeeds
    with pytest.raises(Exception):
        function(backend, [entry("w1", "new2"), charge("w1", 100)])  # cancelled, rolled back
    return {k: copies[k] - before[k] for k in copies}


def test_a_transaction_copies_only_the_items_it_touches(copies):
    small = copies_per_transaction(PATCHED_TRANSACT_WRITE_ITEMS, 10, copies)
    large = copies_per_transaction(PATCHED_TRANSACT_WRITE_ITEMS, 2000, copies)
    assert small == large
    assert large["Table"] == 0
    assert large["Item"] <= 6  # the touched items (and moto's own copy inside update_item)


def test_upstream_copies_whole_tables_which_is_why_it_is_replaced(copies):
    # If this fails, moto changed how it rolls back: re-check whether the patch is still needed.
    large = copies_per_transaction(ORIGINAL_TRANSACT_WRITE_ITEMS, 2000, copies)
    assert large["Table"] == 4  # both tables, on each of the two calls
    assert large["Item"] >= 4000


# ---- no instance tracking for DynamoDB models ------------------------------------------------


def dynamodb_tracked():
    return sum(len(cls.instances_tracked) for cls in model_data["dynamodb"].values())


def test_dynamodb_models_are_not_tracked(store, client):
    create_table(client, "t")
    for i in range(50):
        client.put_item(TableName="t", Item={"pk": {"S": f"k{i}"}})
        client.update_item(
            TableName="t",
            Key={"pk": {"S": f"k{i}"}},
            UpdateExpression="SET n = :n",
            ExpressionAttributeValues={":n": {"N": "1"}},
        )
    assert dynamodb_tracked() == 0
    assert Item.instances_tracked == []


def test_other_models_are_still_tracked():
    from moto.sns.models import Topic  # any non-DynamoDB model

    before = len(Topic.instances_tracked)
    Topic.__new__(Topic)
    assert len(Topic.instances_tracked) == before + 1
    Topic.instances_tracked.pop()
