"""PynamoDB, the app's client, works against the store: tables, conditions, transactions."""

import pytest
from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.connection import Connection
from pynamodb.exceptions import PutError, TransactWriteError
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite


def test_pynamodb_models_against_the_store(store, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")  # for the transactions' Connection
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")
    class Wallet(Model):
        class Meta:
            table_name = "pynamodb-wallets"
            host = store.url
            region = "eu-west-1"
            aws_access_key_id = "local"
            aws_secret_access_key = "local"

        id = UnicodeAttribute(hash_key=True)
        balance = NumberAttribute(default=0)

    Wallet.create_table(billing_mode="PAY_PER_REQUEST", wait=True)
    Wallet(id="w1", balance=5).save()
    with pytest.raises(PutError):
        Wallet(id="w1", balance=9).save(condition=Wallet.id.does_not_exist())

    connection = Connection(host=store.url, region="eu-west-1")
    wallet = Wallet.get("w1")
    with pytest.raises(TransactWriteError) as e:
        with TransactWrite(connection=connection) as tx:
            tx.update(wallet, actions=[Wallet.balance.add(-10)], condition=Wallet.balance >= 10)
            tx.save(Wallet(id="w2", balance=1))
    codes = [r.code if r else None for r in e.value.cancellation_reasons]
    assert sorted(codes, key=str) == ["ConditionalCheckFailed", None]  # PynamoDB orders the ops
    assert Wallet.get("w1").balance == 5
    assert Wallet.count("w2") == 0
    with TransactWrite(connection=connection) as tx:
        tx.update(wallet, actions=[Wallet.balance.add(-5)], condition=Wallet.balance >= 5)
        tx.save(Wallet(id="w2", balance=1))
    assert Wallet.get("w1").balance == 0
    assert Wallet.get("w2").balance == 1
