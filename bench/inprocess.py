"""The environment of a benchmark that runs the service in this process on in-process moto. Call
`use_moto` before anything imports chalicelib: settings and PynamoDB's models read it then."""
from __future__ import annotations

import os

SECRET = "bench-secret-0123456789abcdef012345"


def use_moto(table: str, **extra: str) -> None:
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")  # figures, not a log line per request
    os.environ.update(STAGE="test", AUTH_DEV_SECRET=SECRET, TABLE_NAME=table, AWS_ACCESS_KEY_ID="x",
                      AWS_SECRET_ACCESS_KEY="x", AWS_DEFAULT_REGION="eu-west-1", AWS_REGION="eu-west-1", **extra)
    for name in ("DYNAMODB_ENDPOINT", "STRIPE_SECRET_KEY", "CATALOG_PATH"):  # no local store, Stripe or catalog
        os.environ.pop(name, None)
