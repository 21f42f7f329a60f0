"""The functional fixtures (in-process moto table, fixed clock, the chalice test client), and the
store's retry clock replaced by a fake one: a retry's wait advances it instead of sleeping, and
every jitter is its maximum, so attempts and waits are exact numbers."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest

from chalicelib import clock, config
from chalicelib.credits import store
from tests.functional.conftest import Api, api  # noqa: F401
from tests.stripe_events import sign

SECRET = config.LOCAL_DEFAULTS["STRIPE_WEBHOOK_SECRET"]


class FakeTime:
    def __init__(self):
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


class MaxJitter:
    """Full jitter at its top: uniform(0, x) is x."""

    def uniform(self, lo: float, hi: float) -> float:
        return hi


class Ticking:
    """The service's clock, moving 1 ms each time it is read, from T0: every write gets a later
    ledger seq than the one before, so no attempt is refused by chance (a fixed clock makes two
    seqs of the same millisecond race on their random part) and call counts are exact."""

    def __init__(self, start):
        self.at = start

    def __call__(self):
        self.at += timedelta(milliseconds=1)
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


@pytest.fixture(autouse=True)
def ticking(now, monkeypatch) -> Ticking:
    t = Ticking(now)
    monkeypatch.setattr(clock, "now", t)
    return t


@pytest.fixture(autouse=True)
def store_time(monkeypatch) -> FakeTime:
    fake = FakeTime()
    monkeypatch.setattr(store, "sleep", fake.sleep)
    monkeypatch.setattr(store, "monotonic", fake.monotonic)
    monkeypatch.setattr(store, "rng", MaxJitter())
    return fake


@pytest.fixture
def webhook_secret(monkeypatch):
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", SECRET)
    config.reload()
    yield SECRET
    monkeypatch.delenv("STRIPE_WEBHOOK_SECRET")
    config.reload()


def deliver(client, event: dict):
    body = json.dumps(event).encode()
    return client.call("POST", "/stripe/webhook", raw=body, headers={"Stripe-Signature": sign(body, SECRET)})


def balance(client, ws: str, user: str = "alice") -> dict:
    return client.get(f"/v1/workspaces/{ws}/subscription", user).json["balance"]


def entries(client, ws: str, user: str = "alice") -> list[tuple]:
    """The ledger, newest first, as (kind, plan_delta, topup_delta, held_delta)."""
    return [(e["kind"], e["plan_delta"], e["topup_delta"], e["held_delta"]) for e in
            client.get(f"/v1/workspaces/{ws}/ledger?limit=100", user).json["entries"]]
