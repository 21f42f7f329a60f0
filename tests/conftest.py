"""Shared set-up: settings for tests, an in-process DynamoDB (moto) per test, a fixed clock and
token helpers. Settings are set before anything from chalicelib is imported."""
from __future__ import annotations

import os

os.environ.update(
    STAGE="test",
    AUTH_DEV_SECRET="test-secret-0123456789abcdef0123456789",
    TABLE_NAME="credits-test",
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_DEFAULT_REGION="eu-west-1",
    AWS_REGION="eu-west-1",
)
os.environ.pop("DYNAMODB_ENDPOINT", None)
os.environ.pop("AUTH_JWKS_URL", None)

from datetime import datetime, timezone  # noqa: E402

import pytest  # noqa: E402

from chalicelib import auth, clock, config  # noqa: E402
from chalicelib.credits import models  # noqa: E402

T0 = datetime(2027, 1, 31, 9, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="package")
def moto_aws():
    """In-process moto for a package of tests; botocore clients are made once for all of them."""
    from moto import mock_aws

    with mock_aws():
        config.reload()
        models.bind(config.settings())
        yield


@pytest.fixture
def ddb(moto_aws):
    """A fresh, empty table for one test (and no hints about wallets of earlier tests)."""
    from chalicelib.credits import spending

    spending._hints.clear()
    if models.Wallet.exists():
        models.Wallet.delete_table()
    models.create_table()
    yield


@pytest.fixture
def now():
    clock.set_now(T0)
    yield T0
    clock.set_now(None)


def token(user: str, scope: str = "", ttl: int = 3600) -> str:
    return auth.mint_dev_token(user, scope=scope, ttl=ttl)  # real time: PyJWT checks against it


def bearer(user: str, scope: str = "") -> dict:
    return {"Authorization": f"Bearer {token(user, scope)}"}
