"""Steps per second of the simulation (tests/simulation), and what one run did: operations by
kind, DynamoDB faults injected by kind, 5xx answers the clients retried.

    .venv/bin/python bench/bench_simulation.py [STEPS] [--seed N] [--rate R] [--run-length L]

A seeded random walk over the simulation's operations (the same ones the hypothesis state
machine picks: charges, holds, captures, releases, retries, same key with another body, top-ups,
refunds, subscriptions, cancellations, Stripe deliveries and redeliveries, clock advances, the
renewal job, balance reads, bursts of faults); besides the bursts, every DynamoDB write fails with
probability R (default 0.05) with a fault drawn from every kind tests/faults/injector.py knows.
After every step the invariants are checked (audit, wallets against the model, the ledger route),
as in the test; the figure includes them, and the time they took is shown apart. Every L steps
(default 50) the table starts afresh with three new workspaces, as a hypothesis example does: moto
copies a table on every transaction, so a growing table would measure moto. The operations are
the same for the same seed; where the rate-drawn faults land can shift by a call or two between
runs (entry ids carry random bits, so a write now and then takes one attempt more or less). A
failure prints the seed and the steps since the last fresh table. Figures, never a pass/fail on time.
"""
from __future__ import annotations

import argparse
import os

import random
import sys
from collections import Counter
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.inprocess import use_moto  # noqa: E402

use_moto("bench-simulation")


def operations(sim, rng: random.Random) -> list[tuple[str, int, object]]:
    """(name, weight, call) of every operation of the walk."""
    from tests.faults.injector import KINDS
    from tests.simulation.model import ACTIONS
    from tests.simulation.sim import ADVANCES, TTLS

    ws = lambda: rng.randrange(3)
    pick = lambda: rng.randrange(64)
    shape = lambda: rng.choice(["new", "old"])
    return [
        ("charge", 12, lambda: sim.spend("charge", ws(), rng.randrange(len(ACTIONS)), rng.randrange(2),
                                         rng.random() < 0.5)),
        ("hold", 8, lambda: sim.spend("hold", ws(), rng.randrange(len(ACTIONS)), rng.randrange(2),
                                      rng.random() < 0.5, rng.choice(TTLS))),
        ("capture", 5, lambda: sim.settle(pick(), rng.randrange(6))),
        ("release", 3, lambda: sim.settle(pick(), None)),
        ("retry", 5, lambda: sim.retry(pick())),
        ("conflict", 2, lambda: sim.conflict(pick(), rng.randrange(len(ACTIONS)))),
        ("topup", 3, lambda: sim.buy_topup(ws(), rng.randrange(2), rng.random() < 0.3, shape())),
        ("refund", 1, lambda: sim.refund(pick(), rng.random() < 0.5)),
        ("subscribe", 2, lambda: sim.subscribe(ws(), rng.randrange(2), shape())),
        ("cancel", 1, lambda: sim.cancel(ws(), rng.random() < 0.5)),
        ("deliver", 8, lambda: sim.deliver(pick())),
        ("deliver_all", 2, lambda: sim.deliver_all(rng.randrange(8))),
        ("redeliver", 3, lambda: sim.deliver(pick(), again=True)),
        ("advance", 4, lambda: sim.advance(rng.randrange(len(ADVANCES)))),
        ("renewal_job", 1, lambda: sim.renewal_job()),
        ("read", 3, lambda: sim.read(ws())),
        ("set_cap", 1, lambda: sim.set_cap(rng.choice([None, 0, 30, 200]))),
        # A burst: the next writes fail in a row (17 outlast the store's 16 attempts: a 503).
        ("inject", 2, lambda: sim.inject(rng.choice(KINDS), rng.choice([1, 2, 3, 17]))),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("steps", nargs="?", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=20270131)
    parser.add_argument("--rate", type=float, default=0.05, help="probability that a DynamoDB write fails")
    parser.add_argument("--run-length", type=int, default=50, help="steps between fresh tables")
    args = parser.parse_args()

    from moto import mock_aws

    from tests.simulation.sim import SECRET

    os.environ["STRIPE_WEBHOOK_SECRET"] = SECRET
    with mock_aws():
        from chalice.test import Client

        from chalicelib import clock, config
        from chalicelib.credits import models, store

        store.sleep = lambda seconds: None  # the store's backoff only spends time, never changes an outcome

        config.reload()
        models.bind(config.settings())
        from app import app
        from tests.faults.injector import KINDS, Faults
        from tests.simulation.sim import Sim

        rng = random.Random(args.seed)
        with Client(app) as client, Faults(seed=args.seed) as faults:
            sim = Sim(client, faults)
            ops = operations(sim, rng)
            names, weights = [o[0] for o in ops], [o[1] for o in ops]
            calls = {name: call for name, _, call in ops}
            steps, run, started, setup, checking = 0, [], time.perf_counter(), 0.0, 0.0
            chosen: Counter = Counter()  # steps by operation; some find nothing to do (no hold yet)
            try:
                while steps < args.steps:
                    if steps % args.run_length == 0:
                        t = time.perf_counter()
                        sim.reset()  # clears the injector: faults start again after set-up
                        faults.rate, faults.kinds = args.rate, KINDS
                        setup += time.perf_counter() - t
                        run = []
                    name = rng.choices(names, weights)[0]
                    chosen[name] += 1
                    run.append(name)
                    calls[name]()
                    t = time.perf_counter()
                    sim.check()
                    checking += time.perf_counter() - t
                    steps += 1
            except AssertionError:
                print(f"FAILED at step {steps} (seed {args.seed}, rate {args.rate}, run length {args.run_length}); "
                      f"the steps since the last fresh table: {run}", file=sys.stderr)
                raise
            finally:
                clock.set_now(None)
            elapsed = time.perf_counter() - started - setup

    print(f"simulation: {steps} steps in {elapsed:.1f} s = {steps / elapsed:.1f} steps/s "
          f"(invariants checked after each; seed {args.seed}; each DynamoDB write fails with p={args.rate}; "
          f"a fresh table every {args.run_length} steps, set-up not timed)")
    print(f"time in operations {elapsed - checking:.1f} s ({steps / (elapsed - checking):.1f} steps/s), "
          f"in checking invariants {checking:.1f} s")
    print(f"\n{'operation':<14}{'steps':>7}{'did something':>15}")
    for name in names:
        print(f"{name:<14}{chosen[name]:>7}{sim.ops[name]:>15}")
    print(f"\n{'fault':<22}{'injected':>9}")
    for kind in KINDS:
        print(f"{kind:<22}{faults.injected[kind]:>9}")
    print(f"{'total':<22}{sum(faults.injected.values()):>9}   of {sum(faults.calls.values())} DynamoDB calls")
    answered = ", ".join(f"{k}: {v}" for k, v in sorted(sim.answers.items(), key=str)) or "none"
    print(f"\n5xx answers or job failures the clients retried: {answered}")


if __name__ == "__main__":
    main()
