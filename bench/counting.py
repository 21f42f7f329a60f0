"""Counts DynamoDB requests as botocore sends them (its event hooks), reads and writes apart."""
from __future__ import annotations

from collections import Counter

READS = {"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"}
WRITES = {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"}


class RequestCounter:
    def __init__(self) -> None:
        self.ops: Counter = Counter()
        self.items_written: list[int] = []

    def attach(self, client) -> "RequestCounter":
        client.meta.events.register("before-parameter-build.dynamodb", self._count)
        return self

    def _count(self, model, params, **_):
        self.ops[model.name] += 1
        if model.name == "TransactWriteItems":
            self.items_written.append(sum(1 for op in params["TransactItems"] if "ConditionCheck" not in op))
        elif model.name in WRITES - {"BatchWriteItem"}:
            self.items_written.append(1)

    def reset(self) -> None:
        self.ops.clear()
        self.items_written.clear()

    @property
    def reads(self) -> int:
        return sum(n for op, n in self.ops.items() if op in READS)

    @property
    def writes(self) -> int:
        return sum(n for op, n in self.ops.items() if op in WRITES)


def attach_to_models() -> RequestCounter:
    """Every PynamoDB model has its own connection and botocore client: count them all."""
    from chalicelib.credits.models import MODELS

    counter = RequestCounter()
    clients = {id(m._get_connection().connection.client): m._get_connection().connection.client for m in MODELS}
    for client in clients.values():
        counter.attach(client)
    return counter
