"""Fixtures for the embedded store's tests."""

import pytest

from devserver.store import EmbeddedStore
from tests.store.store_helpers import make_client


@pytest.fixture
def store():
    """An in-memory store, running."""
    with EmbeddedStore(None) as s:
        yield s


@pytest.fixture
def client(store):
    return make_client(store.url)
