"""DynamoDB requests per operation, the service's own time per charge, and cold import time.

    .venv/bin/python bench/bench_requests.py

Requests are counted with botocore's event hooks on an in-process moto table. Own time is the
whole charge route (JWT, parsing, pricing, building the write, rendering) through Chalice's test
client with DynamoDB answered by canned responses at botocore's send hook, so no store time is in
it. Import times are medians of fresh interpreter processes."""
from __future__ import annotations

import json
import os

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.inprocess import use_moto  # noqa: E402

use_moto("bench")

from bench.counting import attach_to_models  # noqa: E402


def count_requests() -> list[tuple[str, int, int, str]]:
    from chalice.test import Client
    from moto import mock_aws

    from chalicelib import auth, config
    from chalicelib.credits import models

    rows = []
    with mock_aws():
        config.reload()
        models.bind(config.settings())
        models.create_table()
        from app import app

        counter = attach_to_models()
        h = {"Authorization": "Bearer " + auth.mint_dev_token("bench"), "Content-Type": "application/json"}
        with Client(app) as c:
            ws = json.loads(c.http.get("/v1/me", headers=h).body)["workspaces"][0]["workspace_id"]
            base = f"/v1/workspaces/{ws}"

            def measure(name, fn, note=""):
                counter.reset()
                r = fn()
                assert r.status_code in (200, 201), (name, r.body)
                rows.append((name, counter.reads, counter.writes, note or ""))
                return json.loads(r.body)

            body = json.dumps({"service": "image"})
            measure("charge", lambda: c.http.post(base + "/charges", headers={**h, "Idempotency-Key": "c1"}, body=body))
            items = max(counter.items_written)
            rows[-1] = (*rows[-1][:3], f"items written: {items}")
            hold = measure("hold", lambda: c.http.post(base + "/holds", headers={**h, "Idempotency-Key": "h1"}, body=body))
            measure("capture", lambda: c.http.post(f"{base}/holds/{hold['hold_id']}/capture", headers=h, body="{}"))
            hold = json.loads(c.http.post(base + "/holds", headers={**h, "Idempotency-Key": "h2"}, body=body).body)
            measure("release", lambda: c.http.post(f"{base}/holds/{hold['hold_id']}/release", headers=h, body="{}"))
            measure("balance read", lambda: c.http.get(base + "/subscription", headers=h))
            measure("ledger page", lambda: c.http.get(base + "/ledger?limit=20", headers=h))
            measure("charge replay", lambda: c.http.post(base + "/charges", headers={**h, "Idempotency-Key": "c1"}, body=body))
    return rows


class _Raw:
    def __init__(self, body: bytes):
        self.body = body

    def stream(self, **_):
        yield self.body


def own_time_per_charge(n: int = 2000, skip_sdk: bool = False) -> float:
    """Median microseconds per charge with DynamoDB answered instantly by canned responses:
    at botocore's send hook (botocore still builds and signs each request), or, with skip_sdk,
    in place of the botocore call itself."""
    from botocore.awsrequest import AWSResponse
    from chalice.test import Client

    from chalicelib import auth, config
    from chalicelib.credits import models

    os.environ["DYNAMODB_ENDPOINT"] = "http://stub.invalid"
    config.reload()
    models.bind(config.settings())
    from app import app

    wallet = {"pk": {"S": "ws"}, "sk": {"S": "wallet"}, "seq": {"S": "~"}, "plan": {"N": "1000000"},
              "topup": {"N": "0"}, "held": {"N": "0"}, "last": {"S": "01ZZZZZZZZZZZZZZZZZZZZZZZZ"}}

    written: dict = {}

    def answer(request, **_):
        target = request.headers.get("X-Amz-Target", b"")
        target = target.decode() if isinstance(target, bytes) else target
        body = {}
        if target.endswith("TransactWriteItems"):  # remember the entry's seq: the wallet's last
            items = json.loads(request.body)["TransactItems"]
            written["seq"] = next(i["Put"]["Item"]["seq"]["S"] for i in items if "Put" in i)
        if target.endswith("GetItem"):  # the wallet after the write, nothing written since
            body = {"Item": {**wallet, "last": {"S": written.get("seq", "")}}}
        if target.endswith("Query"):  # the balance after the charge: the wallet and its entry
            seq = next(v["S"] for v in json.loads(request.body)["ExpressionAttributeValues"].values() if v["S"] != "ws")
            entry = {"pk": {"S": "ws"}, "sk": {"S": "op#k"}, "seq": {"S": seq}, "kind": {"S": "charge"},
                     "plan_delta": {"N": "-40"}, "topup_delta": {"N": "0"}, "held_delta": {"N": "0"},
                     "actor": {"S": "bench"}}
            body = {"Items": [{**wallet, "last": {"S": seq}}, entry], "Count": 2}
        return AWSResponse(request.url, 200, {}, _Raw(json.dumps(body).encode()))

    if skip_sdk:
        from pynamodb.connection.base import Connection

        class _Req:
            headers: dict = {}
            url = ""

        def call(self, operation, kwargs):
            req = _Req()
            req.headers = {"X-Amz-Target": operation}
            req.body = json.dumps(kwargs)
            return json.loads(next(answer(req).raw.stream()))

        Connection._make_api_call = call
    else:
        for model in models.MODELS:
            client = model._get_connection().connection.client
            client.meta.events.register_first("before-send.dynamodb", answer)
    h = {"Authorization": "Bearer " + auth.mint_dev_token("bench"), "Content-Type": "application/json"}
    body = json.dumps({"service": "image", "options": {"quality": "hd", "count": 2}})
    samples = []
    with Client(app) as c:
        for i in range(n):
            t = time.perf_counter()
            r = c.http.post("/v1/workspaces/ws/charges", headers={**h, "Idempotency-Key": f"k{i}"}, body=body)
            samples.append(time.perf_counter() - t)
            assert r.status_code == 201, r.body
    return statistics.median(samples[n // 10:]) * 1e6


def import_ms(module: str, runs: int = 7) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "0"}
    subprocess.run([sys.executable, "-c", f"import {module}"], cwd=ROOT, env=env, check=True)  # warm .pyc
    times = [float(subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True,
                                  capture_output=True, text=True).stdout) for _ in range(runs)]
    return statistics.median(times) * 1000


def main() -> None:
    print("DynamoDB requests per operation (in-process moto, counted with botocore event hooks)")
    print(f"{'operation':<15}{'reads':>6}{'writes':>7}  note")
    for name, reads, writes, note in count_requests():
        print(f"{name:<15}{reads:>6}{writes:>7}  {note}")
    print()
    sdk = own_time_per_charge()
    own = own_time_per_charge(skip_sdk=True)
    print(f"own time per charge, store stubbed (median): {own:.0f} us without botocore, "
          f"{sdk:.0f} us with botocore building and signing its 2 requests (the write and the answer's read)")
    boto3_ms, app_ms = import_ms("boto3"), import_ms("app")
    print(f"cold import: boto3 {boto3_ms:.0f} ms, app.py {app_ms:.0f} ms ({app_ms / boto3_ms:.2f}x boto3)")


if __name__ == "__main__":
    main()
