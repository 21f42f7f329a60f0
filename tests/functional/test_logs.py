"""Logs: one JSON line per request, and never a token or a secret."""
from __future__ import annotations

import json

from chalicelib import config
from tests.conftest import token
from tests.functional.test_webhook import SECRET, deliver, webhook_secret  # noqa: F401  (fixture)
from tests.stripe_events import Stripe


def test_no_token_or_secret_in_any_log_line(api, capfd, caplog, webhook_secret):  # noqa: F811
    ws = api.workspace("alice")
    api.charge(ws, "alice", key="log-1")
    api.charge(ws, "alice", "avatar", key="log-2")  # refused: 402
    api.get(f"/v1/workspaces/{ws}/ledger", "alice")
    api.get("/v1/me", headers={"Authorization": "Bearer not-a-token"})
    e = Stripe("new").event("checkout.session.completed",
                            Stripe("new").checkout_topup(ws, "pack_1000", "cs_log", "pi_log", 1200))
    deliver(api, e)
    out = capfd.readouterr()
    # Every record as the JSON line Powertools writes for it (caplog sees them whatever pytest
    # did to stdout), and everything printed besides.
    from chalicelib.observe import logger

    formatter = logger.registered_formatter
    lines = [json.loads(formatter.format(r)) for r in caplog.records if r.name == "studio-credits"]
    text = out.out + out.err + caplog.text + "".join(json.dumps(line) for line in lines)
    requests = [line for line in lines if line.get("message") == "request"]
    assert {(r["operation"], r["status"]) for r in requests} >= {("charge", 201), ("charge", 402), ("me", 401)}
    assert all(r["workspace"] == ws for r in requests if r["operation"] == "charge")
    assert any(line.get("message") == "stripe event" and line["type"] == "checkout.session.completed" for line in lines)
    for secret in (token("alice"), "not-a-token", config.settings().auth_dev_secret, SECRET, "Bearer", "whsec_"):
        assert secret not in text
