"""Where the models point, and how long a request may hang before botocore gives up on it."""
from __future__ import annotations

import dataclasses

import pytest

from chalicelib import config
from chalicelib.credits import models


@pytest.fixture
def rebind():
    yield
    models.bind(config.settings())


def client_config(model):
    return model._get_connection().connection.client.meta.config


def test_against_dynamodb_a_stuck_request_fails_within_seconds(rebind):
    models.bind(dataclasses.replace(config.settings(), dynamodb_endpoint=None, region="eu-west-1"))
    for model in (models.Wallet, models.Entry, models.Membership):
        c = client_config(model)
        assert (c.connect_timeout, c.read_timeout) == (2, 3)
        assert model._get_connection().connection.client.meta.region_name == "eu-west-1"


def test_the_embedded_store_keeps_pynamodbs_patient_defaults(rebind):
    models.bind(dataclasses.replace(config.settings(), dynamodb_endpoint="http://127.0.0.1:9"))
    c = client_config(models.Wallet)
    assert (c.connect_timeout, c.read_timeout) == (15, 30)
    assert models.Wallet._get_connection().connection.client.meta.endpoint_url == "http://127.0.0.1:9"
