from __future__ import annotations

import json

import pytest
from chalice.test import Client

from tests.conftest import bearer


class Api:
    """chalice.test.Client with JSON in and out."""

    def __init__(self, client: Client):
        self.client = client

    def call(self, method: str, path: str, user: str | None = None, body=None, scope: str = "",
             headers: dict | None = None, raw: bytes | None = None):
        h = {"Content-Type": "application/json", **(bearer(user, scope) if user else {}), **(headers or {})}
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        r = getattr(self.client.http, method.lower())(path, headers=h, body=data)
        try:
            r.json = json.loads(r.body) if r.body else None
        except ValueError:
            r.json = None
        return r

    def get(self, path, user=None, **kw):
        return self.call("GET", path, user, **kw)

    def post(self, path, user=None, body=None, **kw):
        return self.call("POST", path, user, body, **kw)

    def workspace(self, user: str) -> str:
        """The person's personal workspace id (opened on first call)."""
        return self.get("/v1/me", user).json["workspaces"][0]["workspace_id"]

    def charge(self, ws, user, service="image", options=None, key=None, **kw):
        body = {"service": service, "options": options or {}}
        body.update(kw)
        return self.post(f"/v1/workspaces/{ws}/charges", user, body,
                         headers={"Idempotency-Key": key} if key else None)


@pytest.fixture
def api(ddb, now):
    from app import app

    with Client(app) as client:
        yield Api(client)
