"""Data kept in data_dir survives stop/start and a killed process; a torn write loses one write."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
from botocore.exceptions import ClientError

from devserver.store import LOG_NAME, SNAPSHOT_NAME, EmbeddedStore, StoreCorruptError
from tests.store.store_helpers import REGION, create_table, make_client

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

ITEM_KINDS = {
    "s": {"S": "text ü"},
    "n": {"N": "1.50"},
    "b": {"B": b"\x00\x01\xff"},
    "ss": {"SS": ["a", "b"]},
    "ns": {"NS": ["1", "2.5"]},
    "bs": {"BS": [b"x", b"\x00"]},
    "l": {"L": [{"S": "x"}, {"N": "3"}, {"B": b"z"}, {"L": [{"NULL": True}]}]},
    "m": {"M": {"k": {"BOOL": True}, "nested": {"M": {"b": {"B": b"q"}}}}},
    "t": {"BOOL": False},
    "z": {"NULL": True},
}


def write_sample_data(c):
    """Tables with an LSI, a GSI, TTL and tags; items of every type; puts, updates, deletes and
    a transaction; and failed writes that must leave no trace."""
    create_table(
        c,
        "ledger",
        range_key="sk",
        ExtraAttributeDefinitions=[
            {"AttributeName": "at", "AttributeType": "S"},
            {"AttributeName": "kind", "AttributeType": "S"},
        ],
        LocalSecondaryIndexes=[
            {
                "IndexName": "by-at",
                "KeySchema": [
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-kind",
                "KeySchema": [
                    {"AttributeName": "kind", "KeyType": "HASH"},
                    {"AttributeName": "at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["amount"]},
            }
        ],
        Tags=[{"Key": "app", "Value": "credits"}],
    )
    create_table(c, "wallets")
    c.update_time_to_live(
        TableName="ledger", TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"}
    )
    for i in range(30):
        c.put_item(
            TableName="ledger",
            Item={
                "pk": {"S": f"w{i % 3}"},
                "sk": {"S": f"e{i:03d}"},
                "at": {"S": f"2025-01-{i % 28 + 1:02d}"},
                "kind": {"S": "charge" if i % 2 else "grant"},
                "amount": {"N": str(i)},
                "expires": {"N": "1893456000"},
            },
        )
    c.put_item(TableName="wallets", Item={"pk": {"S": "all-kinds"}, **ITEM_KINDS})
    c.put_item(TableName="wallets", Item={"pk": {"S": "w0"}, "bal": {"N": "10"}})
    c.update_item(
        TableName="wallets",
        Key={"pk": {"S": "w0"}},
        UpdateExpression="SET bal = bal + :n, tags = list_append(if_not_exists(tags, :e), :t)",
        ExpressionAttributeValues={
            ":n": {"N": "5"},
            ":e": {"L": []},
            ":t": {"L": [{"S": "x"}]},
        },
    )
    c.delete_item(TableName="ledger", Key={"pk": {"S": "w1"}, "sk": {"S": "e004"}})
    c.transact_write_items(
        TransactItems=[
            {
                "Update": {
                    "TableName": "wallets",
                    "Key": {"pk": {"S": "w0"}},
                    "UpdateExpression": "SET bal = bal - :c",
                    "ConditionExpression": "bal >= :c",
                    "ExpressionAttributeValues": {":c": {"N": "3"}},
                }
            },
            {"Put": {"TableName": "ledger", "Item": {"pk": {"S": "w0"}, "sk": {"S": "tx"}}}},
        ]
    )
    # Failed writes: not applied, so not logged.
    with pytest.raises(ClientError):
        c.put_item(
            TableName="wallets",
            Item={"pk": {"S": "w0"}, "bal": {"N": "0"}},
            ConditionExpression="attribute_not_exists(pk)",
        )
    with pytest.raises(ClientError):
        c.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": "ledger", "Item": {"pk": {"S": "w0"}, "sk": {"S": "no"}}}},
                {
                    "Update": {
                        "TableName": "wallets",
                        "Key": {"pk": {"S": "w0"}},
                        "UpdateExpression": "SET bal = bal - :c",
                        "ConditionExpression": "bal >= :c",
                        "ExpressionAttributeValues": {":c": {"N": "1000"}},
                    }
                },
            ]
        )


def read_everything(c):
    """Everything a client can see, in a comparable form."""
    out = {}
    for name in sorted(c.list_tables()["TableNames"]):
        table = c.describe_table(TableName=name)["Table"]
        items = c.scan(TableName=name, ConsistentRead=True)["Items"]
        out[name] = {
            "table": table,
            "items": sorted(items, key=lambda i: json.dumps(i, sort_keys=True, default=repr)),
            "ttl": c.describe_time_to_live(TableName=name)["TimeToLiveDescription"],
            "tags": c.list_tags_of_resource(ResourceArn=table["TableArn"])["Tags"],
        }
    return out


def log_lines(data_dir):
    with open(os.path.join(data_dir, LOG_NAME), "rb") as f:
        return f.read().splitlines()


def test_restart_reads_back_identical_tables_and_items(tmp_path):
    with EmbeddedStore(tmp_path) as store:
        c = make_client(store.url)
        write_sample_data(c)
        before = read_everything(c)
    # 2 CreateTable + TTL + 30 puts + 2 puts + update + delete + transaction; no failed writes.
    assert len(log_lines(tmp_path)) == 2 + 1 + 30 + 2 + 1 + 1 + 1

    with EmbeddedStore(tmp_path) as store:  # snapshot (empty) + replay of the log
        assert store.stats["replayed"] == 38
        after_replay = read_everything(make_client(store.url))
    assert log_lines(tmp_path) == []  # compacted into the snapshot at start

    with EmbeddedStore(tmp_path) as store:  # the snapshot alone
        assert store.stats["replayed"] == 0
        after_snapshot = read_everything(make_client(store.url))

    assert after_replay == before
    assert after_snapshot == before
    wallet = before["wallets"]["items"]
    assert {"pk": {"S": "all-kinds"}, **ITEM_KINDS} in wallet
    assert before["ledger"]["table"]["LocalSecondaryIndexes"][0]["IndexName"] == "by-at"
    assert before["ledger"]["table"]["GlobalSecondaryIndexes"][0]["IndexName"] == "by-kind"


def test_a_region_is_a_separate_store_and_kept_as_one(tmp_path):
    with EmbeddedStore(tmp_path) as store:
        create_table(make_client(store.url, region="us-east-1"), "t")
        make_client(store.url, region="us-east-1").put_item(
            TableName="t", Item={"pk": {"S": "east"}}
        )
        assert make_client(store.url, region=REGION).list_tables()["TableNames"] == []
    with EmbeddedStore(tmp_path) as store:
        east = make_client(store.url, region="us-east-1")
        assert east.get_item(TableName="t", Key={"pk": {"S": "east"}})["Item"]
        assert make_client(store.url, region=REGION).list_tables()["TableNames"] == []


def test_a_torn_last_log_line_is_ignored(tmp_path):
    with EmbeddedStore(tmp_path) as store:
        c = make_client(store.url)
        create_table(c, "t")
        for i in range(5):
            c.put_item(TableName="t", Item={"pk": {"S": f"k{i}"}})
    with open(os.path.join(tmp_path, LOG_NAME), "ab") as f:
        f.write(b'{"seq":7,"account":"123456789012","region":"eu-west-1","op":"PutItem","bo')

    with EmbeddedStore(tmp_path) as store:
        assert store.stats["torn_tail_ignored"] == 1
        c = make_client(store.url)
        keys = sorted(i["pk"]["S"] for i in c.scan(TableName="t")["Items"])
        assert keys == ["k0", "k1", "k2", "k3", "k4"]
        c.put_item(TableName="t", Item={"pk": {"S": "k5"}})  # the log goes on cleanly
    with EmbeddedStore(tmp_path) as store:
        assert store.stats["torn_tail_ignored"] == 0
        assert make_client(store.url).scan(TableName="t", Select="COUNT")["Count"] == 6


def test_a_garbage_last_line_with_its_newline_is_ignored_too(tmp_path):
    with EmbeddedStore(tmp_path) as store:
        c = make_client(store.url)
        create_table(c, "t")
        c.put_item(TableName="t", Item={"pk": {"S": "k"}})
    with open(os.path.join(tmp_path, LOG_NAME), "ab") as f:
        f.write(b'{"seq":3,"acc\n')
    with EmbeddedStore(tmp_path) as store:
        assert store.stats["torn_tail_ignored"] == 1
        assert make_client(store.url).scan(TableName="t", Select="COUNT")["Count"] == 1


def test_a_bad_line_before_the_last_is_corruption(tmp_path):
    with EmbeddedStore(tmp_path) as store:
        c = make_client(store.url)
        create_table(c, "t")
        c.put_item(TableName="t", Item={"pk": {"S": "k"}})
    lines = log_lines(tmp_path)
    with open(os.path.join(tmp_path, LOG_NAME), "wb") as f:
        f.write(lines[0][:20] + b"\n" + lines[1] + b"\n")
    with pytest.raises(StoreCorruptError):
        EmbeddedStore(tmp_path).start()
    with EmbeddedStore(tmp_path, fresh=True) as store:  # the failed start let go of the dir
        assert make_client(store.url).list_tables()["TableNames"] == []


def test_a_crash_between_snapshot_and_log_truncation_applies_nothing_twice(tmp_path):
    with EmbeddedStore(tmp_path) as store:
        c = make_client(store.url)
        create_table(c, "t")
        for _ in range(10):
            c.update_item(
                TableName="t",
                Key={"pk": {"S": "n"}},
                UpdateExpression="ADD n :one",
                ExpressionAttributeValues={":one": {"N": "1"}},
            )
    log_before = log_lines(tmp_path)
    with EmbeddedStore(tmp_path):  # snapshot now holds n = 10, log truncated
        pass
    with open(os.path.join(tmp_path, LOG_NAME), "wb") as f:  # as if truncation never happened
        f.write(b"\n".join(log_before) + b"\n")
    with EmbeddedStore(tmp_path) as store:
        c = make_client(store.url)
        assert c.get_item(TableName="t", Key={"pk": {"S": "n"}})["Item"]["n"] == {"N": "10"}


def test_compaction_while_running_keeps_the_log_short(tmp_path):
    with EmbeddedStore(tmp_path, compact_every=40) as store:
        c = make_client(store.url)
        create_table(c, "t")
        for i in range(100):
            c.put_item(TableName="t", Item={"pk": {"S": f"k{i}"}, "v": {"N": str(i)}})
        assert store.stats["compactions"] >= 3  # at start, then every 40 or so records
        assert len(log_lines(tmp_path)) < 40
    with EmbeddedStore(tmp_path) as store:
        assert make_client(store.url).scan(TableName="t", Select="COUNT")["Count"] == 100
    with open(os.path.join(tmp_path, SNAPSHOT_NAME)) as f:
        first, *_, last = f.read().splitlines()
    assert json.loads(first)["format"] == 1
    assert json.loads(last) == {"end": {"tables": 1, "items": 100}}


def test_fresh_and_reset_empty_the_store(tmp_path):
    with EmbeddedStore(tmp_path) as store:
        create_table(make_client(store.url), "t")
    with EmbeddedStore(tmp_path, fresh=True) as store:
        c = make_client(store.url)
        assert c.list_tables()["TableNames"] == []
        create_table(c, "u")
    with EmbeddedStore(tmp_path) as store:
        c = make_client(store.url)
        assert c.list_tables()["TableNames"] == ["u"]
        store.reset()
        assert c.list_tables()["TableNames"] == []
        create_table(c, "v")
    with EmbeddedStore(tmp_path) as store:
        assert make_client(store.url).list_tables()["TableNames"] == ["v"]
    EmbeddedStore(tmp_path).reset()  # while stopped
    with EmbeddedStore(tmp_path) as store:
        assert make_client(store.url).list_tables()["TableNames"] == []


def test_one_data_dir_serves_one_store_at_a_time(tmp_path):
    with EmbeddedStore(tmp_path):
        with pytest.raises(RuntimeError, match="in use"):
            EmbeddedStore(tmp_path).start()


def test_data_survives_the_process_being_killed(tmp_path):
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                sys.path.insert(0, {ROOT!r})
                from devserver.store import EmbeddedStore
                store = EmbeddedStore({str(tmp_path)!r})
                print(store.start(), flush=True)
                time.sleep(120)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = child.stdout.readline().strip()
        c = make_client(url)
        create_table(c, "t")
        for i in range(20):
            c.put_item(TableName="t", Item={"pk": {"S": f"k{i}"}})
        with pytest.raises(RuntimeError, match="in use"):
            EmbeddedStore(tmp_path).start()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
    with EmbeddedStore(tmp_path) as store:
        assert make_client(store.url).scan(TableName="t", Select="COUNT")["Count"] == 20
