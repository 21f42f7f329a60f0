"""Helpers shared by the embedded store's tests."""

import boto3
from botocore.config import Config

REGION = "eu-west-1"


def make_clients(url, n, region=REGION, **config):
    """`n` DynamoDB clients for the store (each with its own connection pool), with dummy
    credentials and no retries, so a dropped connection or throttle shows up as an error rather
    than as a silent second attempt. Made here, on one thread: a session is not thread-safe, the
    clients are."""
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=region
    )
    cfg = Config(retries={"max_attempts": 1, "mode": "standard"}, **config)
    return [session.client("dynamodb", endpoint_url=url, config=cfg) for _ in range(n)]


def make_client(url, region=REGION, **config):
    return make_clients(url, 1, region, **config)[0]


def create_table(client, name, range_key=None, **extra):
    keys = [{"AttributeName": "pk", "KeyType": "HASH"}]
    attrs = [{"AttributeName": "pk", "AttributeType": "S"}]
    if range_key:
        keys.append({"AttributeName": range_key, "KeyType": "RANGE"})
        attrs.append({"AttributeName": range_key, "AttributeType": "S"})
    client.create_table(
        TableName=name,
        KeySchema=keys,
        AttributeDefinitions=attrs + extra.pop("ExtraAttributeDefinitions", []),
        BillingMode="PAY_PER_REQUEST",
        **extra,
    )
