"""The store's query index (devserver.store._query): the same answers as moto's Table.query on
every query, and work that does not grow with the size of the table or of the partition."""

import contextlib
import copy
import json
import random

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table

import devserver.store as store_module
from devserver.store import ORIGINAL_QUERY, QUERY_STATS, apply_patches

apply_patches()

KEY_S = [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]


def lsi(name, attr, projection=None):
    return {
        "IndexName": name,
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": attr, "KeyType": "RANGE"},
        ],
        "Projection": projection or {"ProjectionType": "ALL"},
    }


def new_backend():
    """Two tables with a range key (S and N), each with local indexes on an S and an N attribute
    (one of them projecting keys only) and a GSI; and a table without a range key."""
    backend = DynamoDBBackend("us-east-1", DEFAULT_ACCOUNT_ID)
    for name, range_type in (("ts", "S"), ("tn", "N")):
        backend.create_table(
            name,
            schema=KEY_S,
            throughput=None,
            attr=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": range_type},
                {"AttributeName": "seq", "AttributeType": "S"},
                {"AttributeName": "num", "AttributeType": "N"},
                {"AttributeName": "g", "AttributeType": "S"},
            ],
            global_indexes=[{
                "IndexName": "by_g",
                "KeySchema": [
                    {"AttributeName": "g", "KeyType": "HASH"},
                    {"AttributeName": "seq", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }],
            indexes=[lsi("by_seq", "seq"), lsi("by_num", "num", {"ProjectionType": "KEYS_ONLY"})],
            streams=None, billing_mode="PAY_PER_REQUEST", sse_specification=None, tags=[],
            deletion_protection_enabled=False, warm_throughput=None,
        )
    backend.create_table(
        "th",
        schema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        throughput=None,
        attr=[{"AttributeName": "pk", "AttributeType": "S"}],
        global_indexes=None, indexes=None, streams=None, billing_mode="PAY_PER_REQUEST",
        sse_specification=None, tags=[], deletion_protection_enabled=False, warm_throughput=None,
    )
    return backend


@contextlib.contextmanager
def moto_query():
    """Within: Table.query is moto's own."""
    patched = Table.query
    Table.query = ORIGINAL_QUERY
    try:
        yield
    finally:
        Table.query = patched


def answer(call):
    """A query's whole answer, comparable: the items (as moto returns them), ScannedCount and
    LastEvaluatedKey, or the exception."""
    try:
        items, scanned, last = call()
    except Exception as e:  # noqa: BLE001 - the error is part of the answer
        return ("error", type(e).__name__, str(e))
    return (
        [json.dumps(i.to_json(), default=repr, sort_keys=True) for i in items],
        scanned,
        None if last is None else json.dumps(last, default=repr, sort_keys=True),
        last,
    )


def compare(backend, **q):
    """Run one query both ways and require identical answers. Returns the answer."""
    def call():
        return backend.query(**copy.deepcopy(q))

    with moto_query():
        upstream = answer(call)
    ours = answer(call)
    assert ours[:3] == upstream[:3], q
    return ours


def wire(last):
    """A LastEvaluatedKey as a client sends it back."""
    return {k: v.to_json() for k, v in last.items()}


# ---- installed and pinned --------------------------------------------------------------------


def test_the_query_index_is_installed_and_pinned(monkeypatch):
    assert Table.query is store_module._query
    assert Table.put_item is store_module._put_item
    assert Table.delete_item is store_module._delete_item
    assert DynamoDBBackend.update_item is store_module._update_item
    assert store_module._query._store_original is ORIGINAL_QUERY
    store_module.check_moto_pin()  # pinned against the originals, not the patches
    for name in ("moto.dynamodb.models.table.Table.query",
                 "moto.dynamodb.models.DynamoDBBackend.update_item",
                 "moto.dynamodb.models.table.Table._item_comes_before_dct"):
        monkeypatch.setitem(store_module.PINNED_SOURCES, name, "0" * 64)
        with pytest.raises(store_module.MotoPinError, match=name.rsplit(".", 1)[1]):
            store_module.check_moto_pin()
        monkeypatch.undo()


# ---- random data and queries ---------------------------------------------------------------

PARTITIONS = ["p0", "p1", "p2", "p3"]
SEQS = ["a", "ab", "abc", "abd", "b", "ba", "bb", "c", "c\u00e9", "c\U0010ffff", "d", "~"] + [
    f"01J{i:03d}" for i in range(0, 40, 3)
]
NUMS = ["-5", "-0.5", "0", "1", "1.0", "1.50", "2", "10", "1e2", "100", "3.25"]


def range_value(rng, range_type):
    if range_type == "S":
        choices = [f"s{rng.randrange(60):02d}", f"s{rng.randrange(6)}", "s", "t", "\u00e9t\u00e9"]
        return {"S": rng.choice(choices)}
    return {"N": rng.choice([str(rng.randrange(-20, 60)), f"{rng.randrange(10)}.5", "0.25"])}


def random_item(rng, range_type, partition=None):
    item = {"pk": {"S": partition or rng.choice(PARTITIONS)}, "sk": range_value(rng, range_type)}
    if rng.random() < 0.85:
        item["seq"] = {"S": rng.choice(SEQS)}
    if rng.random() < 0.6:
        item["num"] = {"N": rng.choice(NUMS)}
    if rng.random() < 0.3:
        item["g"] = {"S": rng.choice(["g1", "g2"])}
    if rng.random() < 0.3:
        item["filler"] = {"S": "x" * rng.randrange(1, 400)}
    if rng.random() < 0.2:
        item["m"] = {"M": {"a": {"N": "1"}, "l": {"L": [{"S": "x"}, {"BOOL": True}]}}}
    return item


def existing_keys(backend, name):
    table = backend.tables[name]
    return [
        {"pk": item.attrs["pk"].to_json(), "sk": item.attrs["sk"].to_json()}
        for partition in table.items.values()
        for item in partition.values()
    ]


def random_key(rng, backend, name, range_type):
    keys = existing_keys(backend, name)
    if keys and rng.random() < 0.8:
        return rng.choice(keys)
    return {"pk": {"S": rng.choice(PARTITIONS)}, "sk": range_value(rng, range_type)}


UPDATES = [
    ("SET seq = :s", lambda rng: {":s": {"S": rng.choice(SEQS)}}),
    ("REMOVE seq", lambda rng: {}),
    ("SET num = :n", lambda rng: {":n": {"N": rng.choice(NUMS)}}),
    ("REMOVE num", lambda rng: {}),
    ("SET filler = :p", lambda rng: {":p": {"S": "y" * rng.randrange(1, 600)}}),
    ("SET seq = :s, num = :n", lambda rng: {":s": {"S": rng.choice(SEQS)}, ":n": {"N": rng.choice(NUMS)}}),
    ("SET m.a = :n", lambda rng: {":n": {"N": rng.choice(NUMS)}}),  # fails without m
]


def random_write(rng, backend, name, range_type, done):
    """One random write; counts in `done` the kinds that succeeded."""
    kind = rng.choices(["put", "update", "delete", "transaction", "batch"], [5, 4, 2, 2, 1])[0]
    try:
        if kind == "put":
            backend.put_item(name, random_item(rng, range_type))
        elif kind == "update":
            expression, values = rng.choice(UPDATES)
            backend.update_item(
                name, random_key(rng, backend, name, range_type), update_expression=expression,
                expression_attribute_names={}, expression_attribute_values=values(rng),
            )
        elif kind == "delete":
            backend.delete_item(name, random_key(rng, backend, name, range_type))
        elif kind == "batch":  # what BatchWriteItem does, request by request
            for _ in range(rng.randrange(1, 6)):
                if rng.random() < 0.7:
                    backend.put_item(name, random_item(rng, range_type))
                else:
                    backend.delete_item(name, random_key(rng, backend, name, range_type))
        else:
            ops = []
            used = set()
            for _ in range(rng.randrange(1, 5)):
                choice = rng.random()
                if choice < 0.4:
                    item = random_item(rng, range_type)
                    key = {"pk": item["pk"], "sk": item["sk"]}
                    op = {"Put": {"TableName": name, "Item": item}}
                elif choice < 0.75:
                    key = random_key(rng, backend, name, range_type)
                    expression, values = rng.choice(UPDATES[:6])
                    op = {"Update": {"TableName": name, "Key": key, "UpdateExpression": expression}}
                    if values(rng):
                        op["Update"]["ExpressionAttributeValues"] = values(rng)
                else:
                    key = random_key(rng, backend, name, range_type)
                    op = {"Delete": {"TableName": name, "Key": key}}
                if json.dumps(key, sort_keys=True) in used:
                    continue
                used.add(json.dumps(key, sort_keys=True))
                ops.append(op)
            if rng.random() < 0.5:  # cancelled: an item that exists must not, so all is undone
                keys = existing_keys(backend, name)
                key = rng.choice(keys or [{"pk": {"S": "p0"}, "sk": range_value(rng, range_type)}])
                if json.dumps(key, sort_keys=True) not in used:
                    ops.append({"ConditionCheck": {
                        "TableName": name, "Key": key, "ConditionExpression": "attribute_not_exists(pk)"}})
            backend.transact_write_items(ops)
    except Exception:  # noqa: BLE001 - failed writes (conditions, bad updates) are part of the mix
        kind = "failed " + kind
    done[kind] = done.get(kind, 0) + 1


def random_condition(rng, backend, name, attr, kind):
    """A range condition on `attr`, with values near the ones stored."""
    table = backend.tables[name]
    stored = [i.attrs[attr].to_json() for p in table.items.values() for i in p.values() if attr in i.attrs]
    def value():
        if stored and rng.random() < 0.7:
            return rng.choice(stored)
        if kind == "S":
            return {"S": rng.choice(SEQS + ["", "0", "a" * 3, "zz", "s3", "s", "\u00e9"]) or "b"}
        return {"N": rng.choice(NUMS + ["-100", "0.3", "55", "1000"])}
    op = rng.choice(["=", "<", "<=", ">", ">=", "BETWEEN", "BEGINS_WITH", None])
    if op is None:
        return None, []
    if op == "BETWEEN":
        pair = [value(), value()]
        if rng.random() < 0.85:  # mostly in order; moto answers nothing when not
            pair.sort(key=lambda v: DynamoType(v).cast_value)
        return op, pair
    if op == "BEGINS_WITH":
        if kind != "S":
            return "=", [value()]
        v = value()["S"]
        return op, [{"S": v[: rng.randrange(1, len(v) + 1)] if v else "a"}]
    return op, [value()]


def random_query(rng, backend, name, range_type):
    index = rng.choices([None, "by_seq", "by_num", "by_g"], [4, 4, 2, 1])[0]
    attr, kind = {
        None: ("sk", range_type), "by_seq": ("seq", "S"), "by_num": ("num", "N"), "by_g": ("seq", "S"),
    }[index]
    hash_attr, hash_value = ("g", {"S": rng.choice(["g1", "g2"])}) if index == "by_g" else (
        "pk", {"S": rng.choice(PARTITIONS + ["nope"])})
    op, values = random_condition(rng, backend, name, attr, kind)
    q = dict(
        table_name=name, hash_key_dict=hash_value, range_comparison=op, range_value_dicts=values,
        limit=rng.choice([None, 1, 2, 3, 7]), exclusive_start_key=None,
        scan_index_forward=rng.random() < 0.5, projection_expressions=None, index_name=index,
        consistent_read=rng.random() < 0.5, expr_names={}, expr_values={}, filter_expression=None,
        hash_key_conditions=[(hash_attr, hash_value)],
        range_key_conditions=[(attr, op, values)] if op else [],
    )
    if rng.random() < 0.2:
        q["projection_expressions"] = [["sk"], ["seq"]]
    if rng.random() < 0.2:
        q["filter_expression"] = "attribute_exists(#n)"
        q["expr_names"] = {"#n": "num"}
    if rng.random() < 0.25:  # start after some item of the partition (existing or not)
        item = random_item(rng, range_type, hash_value["S"])
        start = {"pk": hash_value if index != "by_g" else item["pk"], "sk": item["sk"]}
        if index == "by_seq" or index == "by_g":
            start["seq"] = item.get("seq", {"S": "b"})
        if index == "by_num":
            start["num"] = item.get("num", {"N": "1"})
        if index == "by_g":
            start["g"] = hash_value
        q["exclusive_start_key"] = start
    return q


def check_random(seed, name, range_type, rounds=60, writes=6, queries=8):
    rng = random.Random(seed)
    backend = new_backend()
    for _ in range(rng.randrange(150, 300)):
        backend.put_item(name, random_item(rng, range_type))
    done = {}
    for _ in range(rounds):
        for _ in range(rng.randrange(writes)):
            random_write(rng, backend, name, range_type, done)
        for _ in range(rng.randrange(1, queries)):
            q = random_query(rng, backend, name, range_type)
            got = compare(backend, **q)
            pages = 0
            while got[0] != "error" and got[3] is not None and pages < 4 and rng.random() < 0.7:
                q = {**q, "exclusive_start_key": wire(got[3])}  # the next page
                got = compare(backend, **q)
                pages += 1
    return done


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("name,range_type", [("ts", "S"), ("tn", "N")])
def test_random_queries_answer_exactly_as_moto(seed, name, range_type):
    before = dict(QUERY_STATS)
    done = check_random(seed, name, range_type)
    for kind in ("put", "update", "delete", "transaction", "failed transaction", "batch"):
        assert done.get(kind, 0) >= 2, done
    assert QUERY_STATS["indexed"] - before["indexed"] > 200  # the index answered most of them
    assert QUERY_STATS["fallback"] > before["fallback"]  # and the GSI ones went to moto
    assert QUERY_STATS["stale"] == before["stale"]  # every write path kept it up to date
    assert QUERY_STATS["errors"] == before["errors"]


def test_every_range_condition_and_direction_over_a_fixed_partition():
    backend = new_backend()
    for i in range(40):
        backend.put_item("ts", {"pk": {"S": "p"}, "sk": {"S": f"s{i:02d}"}, "seq": {"S": SEQS[i % len(SEQS)]},
                                "num": {"N": NUMS[i % len(NUMS)]}})
    sks_ = [{"S": f"s{i:02d}"} for i in range(0, 42, 5)] + [{"S": "s"}, {"S": "s1"}]
    for index, attr, pool in ((None, "sk", sks_),
                              ("by_seq", "seq", [{"S": v} for v in SEQS + ["", "0", "zz", "c"]]),
                              ("by_num", "num", [{"N": v} for v in NUMS + ["-10", "500"]])):
        for op in ("=", "<", "<=", ">", ">=", "BETWEEN", "BEGINS_WITH", None):
            if op == "BEGINS_WITH" and attr == "num":
                continue
            for v in pool:
                if op == "BEGINS_WITH" and v["S"] == "":
                    continue
                values = [] if op is None else [v, pool[-1]] if op == "BETWEEN" else [v]
                for forward in (True, False):
                    for limit in (None, 1, 3):
                        compare(backend, table_name="ts", hash_key_dict={"S": "p"}, range_comparison=op,
                                range_value_dicts=values, limit=limit, exclusive_start_key=None,
                                scan_index_forward=forward, projection_expressions=None, index_name=index,
                                consistent_read=True, expr_names={}, expr_values={}, filter_expression=None,
                                hash_key_conditions=[("pk", {"S": "p"})],
                                range_key_conditions=[(attr, op, values)] if op else [])


def page_through(backend, **q):
    """All pages of a query, each compared with moto's."""
    pages = []
    while True:
        got = compare(backend, **q)
        pages.append(got[0])
        if got[3] is None:
            return pages
        q = {**q, "exclusive_start_key": wire(got[3])}


def test_pagination_reaches_every_item_once_in_order():
    backend = new_backend()
    for i in range(30):
        backend.put_item("ts", {"pk": {"S": "p"}, "sk": {"S": f"s{i:02d}"}, "seq": {"S": f"q{i % 7}"}})
    for forward in (True, False):
        pages = page_through(
            backend, table_name="ts", hash_key_dict={"S": "p"}, range_comparison=">=",
            range_value_dicts=[{"S": "q2"}], limit=4, exclusive_start_key=None, scan_index_forward=forward,
            projection_expressions=None, index_name="by_seq", consistent_read=True, expr_names={},
            expr_values={}, filter_expression=None, hash_key_conditions=[("pk", {"S": "p"})],
            range_key_conditions=[("seq", ">=", [{"S": "q2"}])],
        )
        seen = [json.loads(i)["Attributes"]["sk"]["S"] for page in pages for i in page]
        assert len(seen) == len(set(seen)) == sum(1 for i in range(30) if f"q{i % 7}" >= "q2")


# ---- through the store, as the application queries ------------------------------------------


def create_credits_table(client):
    client.create_table(
        TableName="credits",
        KeySchema=KEY_S,
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in ("pk", "sk", "seq")],
        LocalSecondaryIndexes=[lsi("by_seq", "seq")],
        BillingMode="PAY_PER_REQUEST",
    )


def both_ways(call):
    """The HTTP answer from the store with the index and with moto's own query. (This test is
    the store's only client, so switching Table.query between requests is seen by exactly the
    one request in flight.)"""
    with moto_query():
        try:
            upstream = call()
        except Exception as e:  # noqa: BLE001
            upstream = ("error", type(e).__name__, str(e))
    try:
        ours = call()
    except Exception as e:  # noqa: BLE001
        ours = ("error", type(e).__name__, str(e))
    for answer_ in (upstream, ours):
        if isinstance(answer_, dict):
            answer_.pop("ResponseMetadata", None)
    assert ours == upstream
    return ours


def test_application_queries_over_http_answer_exactly_as_moto(client):
    create_credits_table(client)
    rng = random.Random(7)
    seqs = []
    for i in range(120):
        seqs.append(f"01J{i:06d}")
        client.put_item(TableName="credits", Item={"pk": {"S": f"w{i % 3}"}, "sk": {"S": f"op#{i}"},
                                                     "seq": {"S": seqs[-1]}, "n": {"N": str(i)}})
    for w in range(3):
        client.put_item(TableName="credits",
                        Item={"pk": {"S": f"w{w}"}, "sk": {"S": "wallet"}, "seq": {"S": "~"}})
    client.batch_write_item(RequestItems={"credits": [
        {"DeleteRequest": {"Key": {"pk": {"S": "w0"}, "sk": {"S": "op#3"}}}},
        {"PutRequest": {"Item": {"pk": {"S": "w0"}, "sk": {"S": "op#x"}, "seq": {"S": "01J000050x"}}}},
    ]})
    for _ in range(60):
        w = f"w{rng.randrange(3)}"
        # a charge: the wallet changes in place, an entry is added (or the transaction fails)
        try:
            client.transact_write_items(TransactItems=[
                {"Update": {"TableName": "credits", "Key": {"pk": {"S": w}, "sk": {"S": "wallet"}},
                            "UpdateExpression": "SET #l = :s", "ExpressionAttributeNames": {"#l": "last"},
                            "ExpressionAttributeValues": {":s": {"S": rng.choice(seqs)}}}},
                {"Put": {"TableName": "credits",
                         "Item": {"pk": {"S": w}, "sk": {"S": rng.choice(["op#1", f"op#{rng.random()}"])},
                                  "seq": {"S": f"01J{rng.randrange(200):06d}"}},
                         "ConditionExpression": "attribute_not_exists(sk)"}},
            ])
        except client.exceptions.TransactionCanceledException:
            pass
        op = rng.choice(["<", ">=", "<=", ">", "BETWEEN"])
        x = rng.choice(seqs)
        condition = f"#p = :p AND #s {op} :x" + (" AND :y" if op == "BETWEEN" else "")
        values = {":p": {"S": w}, ":x": {"S": x}}
        if op == "BETWEEN":
            values[":y"] = {"S": "~"}
        request = dict(TableName="credits", IndexName="by_seq", ScanIndexForward=rng.random() < 0.3,
                       Limit=rng.choice([1, 2, 5]), ConsistentRead=True, KeyConditionExpression=condition,
                       ExpressionAttributeNames={"#p": "pk", "#s": "seq"}, ExpressionAttributeValues=values)
        page = both_ways(lambda: client.query(**request))
        if "LastEvaluatedKey" in page:
            both_ways(lambda: client.query(**request, ExclusiveStartKey=page["LastEvaluatedKey"]))
        # and the table itself, by sk
        select = rng.choice(["ALL_ATTRIBUTES", "COUNT"])
        both_ways(lambda: client.query(
            TableName="credits", KeyConditionExpression="pk = :p AND begins_with(sk, :b)",
            ExpressionAttributeValues={":p": {"S": w}, ":b": {"S": "op#1"}}, Limit=3, Select=select))
    # errors are moto's too
    both_ways(lambda: client.query(TableName="credits", IndexName="nope",
                                          KeyConditionExpression="pk = :p",
                                          ExpressionAttributeValues={":p": {"S": "w1"}}))
    both_ways(lambda: client.query(TableName="credits", IndexName="by_seq", Limit=1,
                                          KeyConditionExpression="pk = :p",
                                          ExpressionAttributeValues={":p": {"S": "w1"}},
                                          ExclusiveStartKey={"pk": {"S": "w1"}, "sk": {"S": "op#1"}}))


def test_partiql_writes_reach_the_index(client):
    create_credits_table(client)
    for i in range(5):
        client.put_item(TableName="credits",
                        Item={"pk": {"S": "w"}, "sk": {"S": f"e{i}"}, "seq": {"S": f"s{i}"}})
    query = dict(TableName="credits", IndexName="by_seq", ScanIndexForward=False, Limit=2,
                 KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "w"}})
    both_ways(lambda: client.query(**query))  # the index is built
    client.execute_statement(Statement="UPDATE \"credits\" SET seq='zz' WHERE pk='w' AND sk='e1'")
    client.execute_statement(Statement="DELETE FROM \"credits\" WHERE pk='w' AND sk='e4'")
    client.execute_statement(Statement="INSERT INTO \"credits\" VALUE {'pk': 'w', 'sk': 'e9', 'seq': 'zy'}")
    page = both_ways(lambda: client.query(**query))
    assert [i["sk"]["S"] for i in page["Items"]] == ["e1", "e9"]


# ---- upkeep: every way items change, and the safety net -------------------------------------


def lsi_query(backend, name="ts", partition="p", hash_attr="pk", **extra):
    """A query of `partition` (by_seq, newest first, unless `extra` says otherwise), compared."""
    q = dict(table_name=name, hash_key_dict={"S": partition}, range_comparison=None, range_value_dicts=[],
             limit=None, exclusive_start_key=None, scan_index_forward=False, projection_expressions=None,
             index_name="by_seq", consistent_read=True, expr_names={}, expr_values={}, filter_expression=None,
             hash_key_conditions=[(hash_attr, {"S": partition})], range_key_conditions=[])
    q.update(extra)
    return compare(backend, **q)


def sks(got):
    return [json.loads(i)["Attributes"]["sk"]["S"] for i in got[0]]


def test_update_in_place_moves_an_item_in_the_index():
    backend = new_backend()
    for i in range(5):
        backend.put_item("ts", {"pk": {"S": "p"}, "sk": {"S": f"e{i}"}, "seq": {"S": f"s{i}"}})
    assert sks(lsi_query(backend)) == ["e4", "e3", "e2", "e1", "e0"]
    backend.update_item("ts", {"pk": {"S": "p"}, "sk": {"S": "e0"}}, update_expression="SET seq = :s",
                        expression_attribute_names={}, expression_attribute_values={":s": {"S": "s9"}})
    backend.update_item("ts", {"pk": {"S": "p"}, "sk": {"S": "e3"}}, update_expression="REMOVE seq",
                        expression_attribute_names={}, expression_attribute_values={})
    assert sks(lsi_query(backend)) == ["e0", "e4", "e2", "e1"]
    backend.update_item("ts", {"pk": {"S": "p"}, "sk": {"S": "e7"}}, update_expression="SET seq = :s",
                        expression_attribute_names={}, expression_attribute_values={":s": {"S": "s5"}})
    assert sks(lsi_query(backend)) == ["e0", "e7", "e4", "e2", "e1"]


def test_cancelled_transactions_leave_the_index_as_the_items():
    backend = new_backend()
    for i in range(4):
        backend.put_item("ts", {"pk": {"S": "p"}, "sk": {"S": f"e{i}"}, "seq": {"S": f"s{i}"}})
    lsi_query(backend)
    with pytest.raises(Exception, match="TransactionCanceled|cancel"):
        backend.transact_write_items([
            {"Update": {"TableName": "ts", "Key": {"pk": {"S": "p"}, "sk": {"S": "e0"}},
                        "UpdateExpression": "SET seq = :s",
                        "ExpressionAttributeValues": {":s": {"S": "zz"}}}},
            {"Put": {"TableName": "ts", "Item": {"pk": {"S": "p"}, "sk": {"S": "new"}, "seq": {"S": "s9"}}}},
            {"Put": {"TableName": "ts", "Item": {"pk": {"S": "q"}, "sk": {"S": "new"}, "seq": {"S": "s9"}}}},
            {"Delete": {"TableName": "ts", "Key": {"pk": {"S": "p"}, "sk": {"S": "e1"}}}},
            {"ConditionCheck": {"TableName": "ts", "Key": {"pk": {"S": "p"}, "sk": {"S": "e2"}},
                                "ConditionExpression": "attribute_not_exists(pk)"}},
        ])
    assert sks(lsi_query(backend)) == ["e3", "e2", "e1", "e0"]
    assert sks(lsi_query(backend, partition="q")) == []


def test_deleted_and_recreated_table_starts_a_new_index():
    backend = new_backend()
    backend.put_item("ts", {"pk": {"S": "p"}, "sk": {"S": "old"}, "seq": {"S": "s1"}})
    assert sks(lsi_query(backend)) == ["old"]
    backend.delete_table("ts")
    backend.create_table(
        "ts", schema=KEY_S, throughput=None,
        attr=[{"AttributeName": a, "AttributeType": "S"} for a in ("pk", "sk", "seq")],
        global_indexes=None, indexes=[lsi("by_seq", "seq")], streams=None, billing_mode="PAY_PER_REQUEST",
        sse_specification=None, tags=[], deletion_protection_enabled=False, warm_throughput=None,
    )
    backend.put_item("ts", {"pk": {"S": "p"}, "sk": {"S": "new"}, "seq": {"S": "s1"}})
    assert sks(lsi_query(backend)) == ["new"]


def test_items_changed_behind_its_back_are_caught_and_the_index_rebuilt():
    backend = new_backend()
    table = backend.tables["ts"]
    for i in range(5):
        backend.put_item("ts", {"pk": {"S": "p"}, "sk": {"S": f"e{i}"}, "seq": {"S": f"s{i}"}})
    lsi_query(backend)
    stale = QUERY_STATS["stale"]
    partition = table.items[DynamoType({"S": "p"})]
    # an item added without going through moto's write calls
    partition[DynamoType({"S": "e9"})] = Item(DynamoType({"S": "p"}), DynamoType({"S": "e9"}),
                                             {"pk": {"S": "p"}, "sk": {"S": "e9"}, "seq": {"S": "s9"}})
    assert sks(lsi_query(backend)) == ["e9", "e4", "e3", "e2", "e1", "e0"]
    # an item changed in place without going through update_item
    partition[DynamoType({"S": "e4"})].attrs["seq"] = DynamoType({"S": "s0"})
    assert sks(lsi_query(backend, limit=1)) == ["e9"]
    assert sks(lsi_query(backend, limit=2)) == ["e9", "e3"]
    assert QUERY_STATS["stale"] == stale + 2


def test_unusual_tables_and_items_are_left_to_moto_with_its_answers():
    backend = new_backend()
    for i in range(6):
        backend.put_item("ts", {"pk": {"S": "p"}, "sk": {"S": f"e{i}"}, "seq": {"S": f"s{i}"},
                                "g": {"S": "g1"}})
        backend.put_item("th", {"pk": {"S": f"h{i}"}, "seq": {"S": "x"}})
    fallback = QUERY_STATS["fallback"]
    # a GSI, and a consistent read of it (an error)
    lsi_query(backend, partition="g1", hash_attr="g", index_name="by_g", consistent_read=False, limit=2)
    got = lsi_query(backend, partition="g1", hash_attr="g", index_name="by_g", consistent_read=True, limit=2)
    assert got[0] == "error"
    # an unknown index, and an ExclusiveStartKey without the index attribute (moto's errors)
    assert lsi_query(backend, index_name="nope")[0] == "error"
    no_seq = {"pk": {"S": "p"}, "sk": {"S": "e1"}}
    assert lsi_query(backend, limit=1, exclusive_start_key=no_seq)[0] == "error"
    # Limit 0
    lsi_query(backend, limit=0)
    assert QUERY_STATS["fallback"] == fallback + 5
    # a table without a range key: its one item per key
    indexed = QUERY_STATS["indexed"]
    for start in (None, {"pk": {"S": "h1"}}, {"pk": {"S": "h2"}}):
        lsi_query(backend, name="th", partition="h1", index_name=None, exclusive_start_key=start)
    assert QUERY_STATS["indexed"] == indexed + 3
    # an item whose index attribute has another type than declared: moto orders it its own way
    backend.put_item("ts", {"pk": {"S": "p"}, "sk": {"S": "odd"}, "seq": {"N": "5"}})
    fallback = QUERY_STATS["fallback"]
    lsi_query(backend, limit=2, range_comparison="<", range_value_dicts=[{"S": "s3"}],
              range_key_conditions=[("seq", "<", [{"S": "s3"}])])
    assert QUERY_STATS["fallback"] == fallback + 1
    backend.delete_item("ts", {"pk": {"S": "p"}, "sk": {"S": "odd"}})
    lsi_query(backend, limit=2)
    assert QUERY_STATS["fallback"] == fallback + 1  # indexed again


def test_an_update_that_rewrites_key_attributes_leaves_the_table_to_moto():
    backend = new_backend()
    for i in range(3):
        backend.put_item("ts", {"pk": {"S": "p"}, "sk": {"S": f"e{i}"}, "seq": {"S": f"s{i}"}})
    lsi_query(backend)
    # legacy AttributeUpdates may overwrite the hash key in place; moto's index query then finds
    # the item under its new pk, its table query under its old one
    backend.update_item("ts", {"pk": {"S": "p"}, "sk": {"S": "e1"}}, update_expression=None,
                        expression_attribute_names={}, expression_attribute_values={},
                        attribute_updates={"pk": {"Action": "PUT", "Value": {"S": "elsewhere"}}})
    fallback = QUERY_STATS["fallback"]
    assert sks(lsi_query(backend)) == ["e2", "e0"]
    assert sks(lsi_query(backend, partition="elsewhere")) == ["e1"]
    assert QUERY_STATS["fallback"] == fallback + 2


def test_a_partition_with_an_item_over_the_size_bound_is_left_to_moto(monkeypatch):
    monkeypatch.setattr(store_module, "BIG_ITEM_SIZE", 1000)
    backend = new_backend()
    for i in range(4):
        backend.put_item("ts", {"pk": {"S": "p"}, "sk": {"S": f"e{i}"}, "seq": {"S": f"s{i}"}})
    lsi_query(backend, limit=1)
    backend.update_item("ts", {"pk": {"S": "p"}, "sk": {"S": "e2"}}, update_expression="SET filler = :p",
                        expression_attribute_names={}, expression_attribute_values={":p": {"S": "x" * 2000}})
    fallback = QUERY_STATS["fallback"]
    lsi_query(backend, limit=1)
    assert QUERY_STATS["fallback"] == fallback + 1


def test_results_near_one_megabyte_hand_moto_the_rest_of_the_partition():
    # moto stops a page when the next item, matching or not, would take it past 1 MB.
    backend = new_backend()
    for i in range(8):
        backend.put_item("ts", {"pk": {"S": "p"}, "sk": {"S": f"e{i}"}, "seq": {"S": f"s{i}"},
                                "filler": {"S": "x" * 300_000}})
    for op, value in (("<", "s3"), (">=", "s5"), (None, None)):
        for forward in (True, False):
            values = [{"S": value}] if op else []
            conditions = [("seq", op, values)] if op else []
            got = lsi_query(backend, range_comparison=op, range_value_dicts=values,
                            scan_index_forward=forward, range_key_conditions=conditions)
            assert len(got[0]) <= 3


# ---- cost does not grow with the partition or the table ----------------------------------


def charge_and_query(backend, rounds=5):
    """Like the application: each round writes the partition (the wallet in place and a new
    entry, in one transaction), then queries it newest first with Limit 2 and a range condition,
    both below and from the new entry's seq. Returns, per round, the items the queries examined,
    the item keys re-filed in the index, and the queries left to moto's walk."""
    stats = dict(QUERY_STATS)
    for r in range(rounds):
        seq = f"01K{r:06d}"
        backend.transact_write_items([
            {"Update": {"TableName": "ts", "Key": {"pk": {"S": "w"}, "sk": {"S": "wallet"}},
                        "UpdateExpression": "SET #l = :s", "ExpressionAttributeNames": {"#l": "last"},
                        "ExpressionAttributeValues": {":s": {"S": seq}}}},
            {"Put": {"TableName": "ts",
                     "Item": {"pk": {"S": "w"}, "sk": {"S": f"charge#{r}"}, "seq": {"S": seq}}}},
        ])
        for op in ("<", ">="):
            items, _, last = backend.query(
                "ts", {"S": "w"}, op, [{"S": seq}], 2, None, False, None, index_name="by_seq",
                consistent_read=True, expr_names={}, expr_values={}, filter_expression=None,
                hash_key_conditions=[("pk", {"S": "w"})], range_key_conditions=[("seq", op, [{"S": seq}])])
            assert len(items) == 2 and last is not None
    return {k: (QUERY_STATS[k] - stats[k]) / rounds for k in ("examined", "synced", "fallback")}


def backend_with_partition(n, other_partitions=0):
    backend = new_backend()
    for i in range(n):
        backend.put_item("ts", {"pk": {"S": "w"}, "sk": {"S": f"op#{i:06d}"}, "seq": {"S": f"01J{i:06d}"}})
    backend.put_item("ts", {"pk": {"S": "w"}, "sk": {"S": "wallet"}, "seq": {"S": "~"}})
    for i in range(other_partitions):
        backend.put_item("ts", {"pk": {"S": f"other{i % 50}"}, "sk": {"S": f"op#{i:06d}"},
                                "seq": {"S": f"01J{i:06d}"}})
    charge_and_query(backend, rounds=1)  # the partition's index is built on its first query
    return backend


def test_query_work_does_not_grow_with_partition_or_table_size(monkeypatch):
    calls = {"all_items": 0}
    all_items = Table.all_items

    def counting_all_items(self):
        calls["all_items"] += 1
        return all_items(self)

    small_backend = backend_with_partition(50)
    large_backend = backend_with_partition(5000, other_partitions=5000)
    monkeypatch.setattr(Table, "all_items", counting_all_items)
    small = charge_and_query(small_backend)
    large = charge_and_query(large_backend)
    assert small == large == {"examined": 6, "synced": 2, "fallback": 0}
    assert calls["all_items"] == 0  # never a walk of the whole table


def test_moto_alone_would_walk_the_whole_table(monkeypatch):
    # If this fails, moto's query changed: re-check whether the index is still needed.
    calls = {"all_items": 0, "items": 0}
    all_items = Table.all_items

    def counting_all_items(self):
        result = all_items(self)
        calls["all_items"] += 1
        calls["items"] += len(result)
        return result

    backend = backend_with_partition(500, other_partitions=500)
    monkeypatch.setattr(Table, "all_items", counting_all_items)
    with moto_query():
        charge_and_query(backend, rounds=1)
    assert calls["all_items"] == 2 and calls["items"] >= 2 * 1000
