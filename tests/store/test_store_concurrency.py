"""16 clients at once against one store: conditional writes and transactions stay exact."""

import threading
import uuid

from botocore.exceptions import ClientError

from tests.store.store_helpers import create_table, make_clients

THREADS = 16


def run_clients(url, n_threads, attempts, attempt):
    """Run `attempt(client, thread, i)` `attempts` times on each of `n_threads` threads, each with
    its own client, all released at once. Returns (successes, {error code: count})."""
    clients = make_clients(url, n_threads)
    barrier = threading.Barrier(n_threads)
    lock = threading.Lock()
    successes = 0
    errors: dict[str, int] = {}

    def work(t):
        nonlocal successes
        barrier.wait()
        for i in range(attempts):
            try:
                attempt(clients[t], t, i)
            except ClientError as e:
                code = e.response["Error"]["Code"]
            except Exception as e:  # connection reset, timeout...: counted, and fails the test
                code = type(e).__name__
            else:
                code = None
            with lock:
                if code is None:
                    successes += 1
                else:
                    errors[code] = errors.get(code, 0) + 1

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return successes, errors


def test_conditional_update_is_exact_under_16_clients(store, client):
    create_table(client, "counters")
    client.put_item(TableName="counters", Item={"pk": {"S": "c"}, "n": {"N": "0"}})

    def attempt(c, t, i):
        c.update_item(
            TableName="counters",
            Key={"pk": {"S": "c"}},
            UpdateExpression="SET n = n + :one",
            ConditionExpression="n < :limit",
            ExpressionAttributeValues={":one": {"N": "1"}, ":limit": {"N": "500"}},
        )

    successes, errors = run_clients(store.url, THREADS, 50, attempt)

    assert successes == 500
    assert errors == {"ConditionalCheckFailedException": 16 * 50 - 500}
    item = client.get_item(TableName="counters", Key={"pk": {"S": "c"}}, ConsistentRead=True)
    assert item["Item"]["n"] == {"N": "500"}


def test_two_item_transactions_are_exact_under_16_clients(store, client):
    create_table(client, "wallets")
    create_table(client, "entries", range_key="sk")
    client.put_item(TableName="wallets", Item={"pk": {"S": "w1"}, "bal": {"N": "100"}})

    def attempt(c, t, i):
        c.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": "wallets",
                        "Key": {"pk": {"S": "w1"}},
                        "UpdateExpression": "SET bal = bal - :c",
                        "ConditionExpression": "bal >= :c",
                        "ExpressionAttributeValues": {":c": {"N": "1"}},
                    }
                },
                {
                    "Put": {
                        "TableName": "entries",
                        "Item": {
                            "pk": {"S": "w1"},
                            "sk": {"S": f"{t:02d}-{i:02d}-{uuid.uuid4().hex}"},
                            "amount": {"N": "-1"},
                        },
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
        )

    successes, errors = run_clients(store.url, THREADS, 20, attempt)

    assert successes == 100
    assert errors == {"TransactionCanceledException": 16 * 20 - 100}
    wallet = client.get_item(TableName="wallets", Key={"pk": {"S": "w1"}})["Item"]
    assert wallet["bal"] == {"N": "0"}
    entries = client.query(
        TableName="entries",
        KeyConditionExpression="pk = :w",
        ExpressionAttributeValues={":w": {"S": "w1"}},
        Select="COUNT",
    )
    assert entries["Count"] == 100


def test_48_clients_connecting_at_once_get_no_connection_errors(store, client):
    create_table(client, "t")
    client.put_item(TableName="t", Item={"pk": {"S": "a"}})

    def attempt(c, t, i):
        assert c.get_item(TableName="t", Key={"pk": {"S": "a"}})["Item"] == {"pk": {"S": "a"}}

    successes, errors = run_clients(store.url, 48, 2, attempt)

    assert errors == {}
    assert successes == 96
