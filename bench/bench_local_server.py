"""Charges per second through the local server (`make run`: the app over its embedded store), and
its resident memory, with 0, 10,000 and 50,000 ledger entries in the charged wallet's partition.

    .venv/bin/python bench/bench_local_server.py         (about two minutes)

One server process per size, each started as `make run` starts it, preloaded straight into its
store (grant entries that keep the wallet equal to its ledger), then snapshotted. Charges go over
HTTP from CLIENTS threads, to every server in interleaved rounds so outside load weighs on every
size alike. Prints figures; never passes or fails on time. BENCH_SIZES=0,50000 shortens a run.
"""
from __future__ import annotations

import os

os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")  # figures, not a log line per request
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

SIZES = tuple(int(x) for x in os.environ.get("BENCH_SIZES", "0,10000,50000").split(","))
CHARGES_PER_ROUND = 300
ROUNDS = 4
CLIENTS = 4
SECRET = "bench-secret-0123456789abcdef0123456789"
USER = "bench-user"
FUNDING = 10**9


def child(n_entries: int, data_dir: str) -> None:
    """Runs in the server process: serve, open the wallet, preload its ledger, then wait."""
    from datetime import datetime, timedelta, timezone
    from pathlib import Path

    from devserver.server import serve

    server = serve("127.0.0.1", 0, Path(data_dir), fresh=True, quiet=True).serve_in_thread()
    from chalicelib.credits import rules, wallets

    start = datetime.now(timezone.utc) - timedelta(days=1)
    ws = wallets.personal_workspace_id(USER)
    wallets.open_workspace(ws, "Personal", "personal", USER, start - timedelta(seconds=1))
    from chalicelib import config

    with server.store.lock:
        backend = server.store.backend(region=config.settings().region)
        table = config.settings().table_name
        seq = ""
        # n_entries older entries in the wallet's partition, then one that funds the charges;
        # the wallet stays equal to the sum of its ledger.
        for i in range(n_entries + 1):
            seq = rules.next_seq(start, seq)
            funding = i == n_entries
            backend.put_item(table, {
                "pk": {"S": ws}, "sk": {"S": f"adjust#bench-{i}"}, "seq": {"S": seq}, "kind": {"S": "adjust"},
                "plan_delta": {"N": "0"}, "topup_delta": {"N": str(FUNDING if funding else 0)},
                "held_delta": {"N": "0"}, "ref": {"M": {"type": {"S": "bench"}}}, "actor": {"S": "system"}})
        backend.update_item(table, {"pk": {"S": ws}, "sk": {"S": "wallet"}},
                            update_expression="SET topup = :t, #l = :l",
                            expression_attribute_names={"#l": "last"},
                            expression_attribute_values={":t": {"N": str(FUNDING)}, ":l": {"S": seq}},
                            condition_expression=None)
        server.store.compact()
    print(server.url, ws, flush=True)
    sys.stdin.read()
    server.close()


class Server:
    def __init__(self, n_entries: int):
        self.n = n_entries
        self.dir = tempfile.mkdtemp(prefix=f"bench-{n_entries}-")
        env = {**os.environ, "STAGE": "local", "AUTH_DEV_SECRET": SECRET, "TABLE_NAME": "credits"}
        env.pop("DYNAMODB_ENDPOINT", None)
        self.proc = subprocess.Popen([sys.executable, __file__, "--child", str(n_entries), self.dir], cwd=ROOT,
                                     env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.url, self.ws = self.proc.stdout.readline().split()
        self.rss_start = self.rss_mb()

    def rss_mb(self) -> float:
        for line in open(f"/proc/{self.proc.pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def token() -> str:
    os.environ.update(STAGE="local", AUTH_DEV_SECRET=SECRET)
    from chalicelib import auth, config

    config.reload()
    return auth.mint_dev_token(USER)


def run_round(server: Server, tok: str, start: int, count: int) -> tuple[float, int]:
    local = threading.local()
    url = f"{server.url}/v1/workspaces/{server.ws}/charges"

    def charge(i: int) -> int:
        if not hasattr(local, "s"):
            local.s = requests.Session()
            local.s.headers["Authorization"] = f"Bearer {tok}"
        r = local.s.post(url, json={"service": "image"}, headers={"Idempotency-Key": f"b{i}"}, timeout=60)
        return r.status_code

    t = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        codes = list(pool.map(charge, range(start, start + count)))
    return time.perf_counter() - t, sum(c != 201 for c in codes)


def main() -> None:
    tok = token()
    servers = [Server(n) for n in SIZES]
    elapsed = {s.n: 0.0 for s in servers}
    failed = {s.n: 0 for s in servers}
    try:
        for r in range(ROUNDS):
            for s in servers:
                dt, bad = run_round(s, tok, r * CHARGES_PER_ROUND, CHARGES_PER_ROUND)
                elapsed[s.n] += dt
                failed[s.n] += bad
        total = ROUNDS * CHARGES_PER_ROUND
        base = total / elapsed[servers[0].n]
        print(f"charges through the local server ({CLIENTS} clients, {total} charges per size, "
              f"embedded store = patched moto)")
        print(f"{'ledger entries':>15}{'charges/s':>11}{'vs first':>10}{'failed':>8}{'RSS start MB':>14}{'RSS after MB':>14}")
        for s in servers:
            rate = total / elapsed[s.n]
            print(f"{s.n:>15,}{rate:>11.0f}{rate / base:>10.0%}{failed[s.n]:>8}{s.rss_start:>14.1f}{s.rss_mb():>14.1f}")
    finally:
        for s in servers:
            s.close()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(int(sys.argv[2]), sys.argv[3])
    else:
        main()
