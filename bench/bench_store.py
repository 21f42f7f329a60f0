"""Charges per second through the embedded store, and its memory, as the ledger grows.

    .venv/bin/python bench/bench_store.py            (about two minutes)

A charge is the two-item transaction the wallet makes: update the wallet's balance under the
condition that it covers the cost, and put a ledger entry that must not exist yet. Charges go
through boto3 over HTTP from CLIENTS threads in this process to a store in a child process (so the
store's resident memory is its own), keeping its data in a temporary data_dir as `make run` does.

One store per size (0, 10,000 and 50,000 ledger entries, preloaded into the charged wallet's
partition straight into the backend, then snapshotted), all running at once; charges go to them in
interleaved rounds, so that whatever else the machine is doing weighs on every size alike. For each:
charges per second, the store process's CPU per charge, its VmRSS before and after, and the time a
restart on its data takes (load the snapshot, replay the log). Then, on an empty ledger, memory
after 20,000 charges against memory at the start. Prints figures; never passes or fails on time.
(BENCH_SIZES=0,50000 and BENCH_LONG_RUN=0 shorten a run.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

SIZES = tuple(int(x) for x in os.environ.get("BENCH_SIZES", "0,10000,50000").split(","))
CHARGES_PER_SIZE = 2_000
ROUNDS = 4
WARMUP = 200
LONG_RUN = int(os.environ.get("BENCH_LONG_RUN", "20000"))
CLIENTS = 4
WALLET = "w-bench"


# ---- the child: a store, preloaded -----------------------------------------------------------


def serve(n_entries: int, data_dir: str, preload: bool) -> None:
    from devserver.store import EmbeddedStore

    store = EmbeddedStore(data_dir)
    started = time.perf_counter()
    url = store.start()
    start_seconds = time.perf_counter() - started
    if preload:
        with store.lock:
            backend = store.backend()
            for name, range_key in (("wallets", None), ("ledger", "sk")):
                schema = [{"AttributeName": "pk", "KeyType": "HASH"}]
                attr = [{"AttributeName": "pk", "AttributeType": "S"}]
                if range_key:
                    schema.append({"AttributeName": range_key, "KeyType": "RANGE"})
                    attr.append({"AttributeName": range_key, "AttributeType": "S"})
                backend.create_table(
                    name, schema=schema, throughput=None, attr=attr, global_indexes=None,
                    indexes=None, streams=None, billing_mode="PAY_PER_REQUEST",
                    sse_specification=None, tags=[], deletion_protection_enabled=False,
                    warm_throughput=None,
                )
            backend.put_item("wallets", {"pk": {"S": WALLET}, "bal": {"N": str(10**12)}})
            for i in range(n_entries):
                backend.put_item(
                    "ledger",
                    {
                        "pk": {"S": WALLET},
                        "sk": {"S": f"pre-{i:06d}"},
                        "amount": {"N": "-1"},
                        "service": {"S": "bench"},
                    },
                )
            store.compact()
    print(url, f"{start_seconds:.3f}", flush=True)
    sys.stdin.read()  # until the parent closes our stdin
    store.stop()


# ---- the parent: clients and figures ---------------------------------------------------------


class Child:
    def __init__(self, n_entries: int, data_dir: str, preload: bool = True) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(n_entries), data_dir, str(int(preload))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        url, start_seconds = self.proc.stdout.readline().split()
        self.url = url
        self.start_seconds = float(start_seconds)

    def rss_mb(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def cpu_seconds(self) -> float:
        """User + system CPU time the child has used so far."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)
        self.proc.stdout.close()


def clients(url: str, n: int) -> list:
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(
        aws_access_key_id="bench", aws_secret_access_key="bench", region_name="us-east-1"
    )
    cfg = Config(retries={"max_attempts": 1, "mode": "standard"})
    return [session.client("dynamodb", endpoint_url=url, config=cfg) for _ in range(n)]


def charge(client) -> None:
    client.transact_write_items(
        TransactItems=[
            {
                "Update": {
                    "TableName": "wallets",
                    "Key": {"pk": {"S": WALLET}},
                    "UpdateExpression": "SET bal = bal - :c",
                    "ConditionExpression": "bal >= :c",
                    "ExpressionAttributeValues": {":c": {"N": "1"}},
                }
            },
            {
                "Put": {
                    "TableName": "ledger",
                    "Item": {
                        "pk": {"S": WALLET},
                        "sk": {"S": f"c-{uuid.uuid4().hex}"},
                        "amount": {"N": "-1"},
                        "service": {"S": "bench"},
                    },
                    "ConditionExpression": "attribute_not_exists(sk)",
                }
            },
        ]
    )


def run_charges(cs: list, total: int) -> tuple[float, int]:
    """`total` charges split over the clients, one thread each. Returns (seconds, failures)."""
    failures = 0
    lock = threading.Lock()

    def work(client, n):
        nonlocal failures
        for _ in range(n):
            try:
                charge(client)
            except Exception:  # noqa: BLE001 - counted and printed
                with lock:
                    failures += 1

    shares = [total // len(cs) + (1 if i < total % len(cs) else 0) for i in range(len(cs))]
    threads = [threading.Thread(target=work, args=(c, n)) for c, n in zip(cs, shares)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started, failures


def count_entries(client) -> int:
    count, start = 0, None
    while True:
        kwargs = {"ExclusiveStartKey": start} if start else {}
        page = client.query(
            TableName="ledger",
            KeyConditionExpression="pk = :w",
            ExpressionAttributeValues={":w": {"S": WALLET}},
            Select="COUNT",
            **kwargs,
        )
        count += page["Count"]
        start = page.get("LastEvaluatedKey")
        if not start:
            return count


def main() -> None:
    print(
        f"embedded store: {CHARGES_PER_SIZE:,} two-item charges per size after {WARMUP} warm-up, "
        f"{CLIENTS} client threads (boto3 over HTTP), one store per size in a child process with "
        f"a data_dir; sizes measured in {ROUNDS} interleaved rounds so that other load on the "
        "machine falls on all of them alike"
    )
    print()
    header = (
        f"{'ledger entries':>15} {'charges/s':>10} {'vs empty':>9} {'store CPU ms':>13} "
        f"{'failed':>7} {'RSS start MB':>13} {'RSS after MB':>13} {'restart s':>10} "
        f"{'entries after':>14}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        children, cs, rss_start, seconds, cpu, failed = {}, {}, {}, {}, {}, {}
        for n in SIZES:
            children[n] = Child(n, os.path.join(tmp, f"size-{n}"))
            cs[n] = clients(children[n].url, CLIENTS)
            rss_start[n] = children[n].rss_mb()
            run_charges(cs[n], WARMUP)
            seconds[n] = cpu[n] = 0.0
            failed[n] = 0
        for _ in range(ROUNDS):
            for n in SIZES:
                before = children[n].cpu_seconds()
                elapsed, f = run_charges(cs[n], CHARGES_PER_SIZE // ROUNDS)
                cpu[n] += children[n].cpu_seconds() - before
                seconds[n] += elapsed
                failed[n] += f
        rss_after = {n: children[n].rss_mb() for n in SIZES}
        for child in children.values():
            child.close()

        print(header)
        print("-" * len(header))
        base_rate = None
        for n in SIZES:
            # Restart on the same data: snapshot + log replay + compaction; then count entries.
            again = Child(n, os.path.join(tmp, f"size-{n}"), preload=False)
            entries = count_entries(clients(again.url, 1)[0])
            again.close()
            rate = CHARGES_PER_SIZE / seconds[n]
            base_rate = base_rate or rate
            cpu_ms = cpu[n] * 1000 / CHARGES_PER_SIZE
            print(
                f"{n:>15,} {rate:>10.0f} {rate / base_rate:>9.0%} {cpu_ms:>13.2f} "
                f"{failed[n]:>7} {rss_start[n]:>13.1f} {rss_after[n]:>13.1f} "
                f"{again.start_seconds:>10.2f} {entries:>14,}",
                flush=True,
            )

        if not LONG_RUN:
            return
        print()
        child = Child(0, os.path.join(tmp, "long"))
        long_cs = clients(child.url, CLIENTS)
        run_charges(long_cs, WARMUP)
        rss_long_start = child.rss_mb()
        marks = []
        done = 0
        elapsed = 0.0
        long_failed = 0
        for _ in range(4):
            e, f = run_charges(long_cs, LONG_RUN // 4)
            elapsed += e
            long_failed += f
            done += LONG_RUN // 4
            marks.append(f"{done:,}: {child.rss_mb():.1f}")
        rss_end = child.rss_mb()
        child.close()
        print(
            f"memory over {LONG_RUN:,} charges (empty ledger at start, {LONG_RUN / elapsed:.0f} "
            f"charges/s, {long_failed} failed): RSS at start {rss_long_start:.1f} MB, after "
            f"{rss_end:.1f} MB (+{rss_end - rss_long_start:.1f} MB)"
        )
        print("  RSS MB after charges  " + "   ".join(marks))
        if len(SIZES) > 1:
            low, high = min(SIZES), max(SIZES)
            per_thousand = (rss_start[high] - rss_start[low]) / (high - low) * 1000
            print(
                f"  (each charge adds a ledger entry; preloaded entries took "
                f"{per_thousand:.2f} MB per 1,000, so {LONG_RUN:,} entries account for about "
                f"{per_thousand * LONG_RUN / 1000:.0f} MB)"
            )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]), sys.argv[3], sys.argv[4] == "1")
    else:
        main()
