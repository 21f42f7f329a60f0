"""The simulation, as a hypothesis state machine: random operations on three workspaces (two
personal, one team of two), random DynamoDB faults, the invariants checked after every step
(tests/simulation/sim.py says what each operation and check is, model.py what each wallet should
hold). A failure shrinks to the shortest sequence of steps that still fails, printed as code, with
the seed to run it again.

    .venv/bin/python -m pytest -q tests/simulation                        # 12 runs of 50 steps, ~25 s
    SIM_EXAMPLES=200 SIM_STEPS=80 .venv/bin/python -m pytest -q tests/simulation  # longer
    SIM_SEED=7 .venv/bin/python -m pytest -q tests/simulation              # another seed

The default run is deterministic (a pinned seed, no example database): the same steps every time.
Shrinking a long failing run can take minutes (every candidate replays its steps on moto).
"""
from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, Phase, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, get_state_machine_test, invariant, precondition, rule

from chalicelib import clock, config
from tests.faults.injector import KINDS, Faults
from tests.simulation.model import ACTIONS
from tests.simulation.sim import ADVANCES, SECRET, TTLS, Sim

SEED = int(os.environ.get("SIM_SEED") or 20270131)
EXAMPLES = int(os.environ.get("SIM_EXAMPLES") or 12)
STEPS = int(os.environ.get("SIM_STEPS") or 50)

WS = st.integers(0, 2)
PICK = st.integers(0, 63)  # an earlier request, hold or event, by index (modulo how many there are)


class Simulation(RuleBasedStateMachine):
    sim: Sim  # one driver for the whole run (the test client, the fault injector); reset per example

    def __init__(self):
        super().__init__()
        self.sim.reset()
        self.caps_set = 0

    @rule(w=WS, action=st.integers(0, len(ACTIONS) - 1), user=st.integers(0, 1), via_service=st.booleans())
    def charge(self, w, action, user, via_service):
        self.sim.spend("charge", w, action, user, via_service)

    @rule(w=WS, action=st.integers(0, len(ACTIONS) - 1), user=st.integers(0, 1), via_service=st.booleans(),
          ttl=st.sampled_from(TTLS))
    def hold(self, w, action, user, via_service, ttl):
        self.sim.spend("hold", w, action, user, via_service, ttl)

    @rule(i=PICK, quarters=st.integers(0, 5))
    def capture(self, i, quarters):
        self.sim.settle(i, quarters)

    @rule(i=PICK)
    def release(self, i):
        self.sim.settle(i, None)

    @rule(i=PICK)
    def retry(self, i):
        self.sim.retry(i)

    @rule(i=PICK, action=st.integers(0, len(ACTIONS) - 1))
    def same_key_other_body(self, i, action):
        self.sim.conflict(i, action)

    @rule(w=WS, pack=st.integers(0, 1), delayed=st.booleans(), shape=st.sampled_from(["new", "old"]))
    def buy_topup(self, w, pack, delayed, shape):
        self.sim.buy_topup(w, pack, delayed, shape)

    @rule(i=PICK, full=st.booleans())
    def refund(self, i, full):
        self.sim.refund(i, full)

    @rule(w=WS, plan=st.integers(0, 1), shape=st.sampled_from(["new", "old"]))
    def subscribe(self, w, plan, shape):
        self.sim.subscribe(w, plan, shape)

    @rule(w=WS, at_period_end=st.booleans())
    def cancel(self, w, at_period_end):
        self.sim.cancel(w, at_period_end)

    @rule(i=PICK)
    def deliver(self, i):
        self.sim.deliver(i)

    @rule(order=st.integers(0, 7))
    def deliver_all(self, order):
        self.sim.deliver_all(order)

    @rule(i=PICK)
    def deliver_again(self, i):
        self.sim.deliver(i, again=True)

    @rule(step=st.integers(0, len(ADVANCES) - 1), then_renewal_job=st.booleans())
    def advance_clock(self, step, then_renewal_job):
        self.sim.advance(step)
        if then_renewal_job:
            self.sim.renewal_job()

    @precondition(lambda self: self.caps_set < 4)  # owners set caps now and then, not every step
    @rule(cap=st.sampled_from([None, 0, 30, 200]))
    def cap_member(self, cap):
        self.caps_set += 1
        self.sim.set_cap(cap)

    @rule(w=WS)
    def read_balance(self, w):
        self.sim.read(w)

    @rule(kind=st.sampled_from(KINDS), times=st.sampled_from([1, 2, 3, 17]))
    def fault(self, kind, times):
        # 17 in a row outlast the store's 16 attempts: the client sees 503 and sends it again.
        self.sim.inject(kind, times)

    @invariant()
    def invariants(self):
        self.sim.check()


@pytest.fixture
def webhook_secret(monkeypatch):
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", SECRET)
    config.reload()
    yield
    monkeypatch.delenv("STRIPE_WEBHOOK_SECRET")
    config.reload()


@pytest.fixture
def no_backoff(monkeypatch):
    """The store's backoff between attempts only spends time, it never changes an outcome."""
    from chalicelib.credits import store

    monkeypatch.setattr(store, "sleep", lambda seconds: None)


def test_simulation(moto_aws, webhook_secret, no_backoff):
    from chalice.test import Client

    from app import app

    run = settings(max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None, database=None,
                   suppress_health_check=list(HealthCheck), report_multiple_bugs=False,
                   phases=[Phase.generate, Phase.shrink])
    with Client(app) as client, Faults(seed=SEED) as faults:
        Simulation.sim = Sim(client, faults)
        try:
            seed(SEED)(get_state_machine_test(Simulation, settings=run))()
        except AssertionError as e:
            e.add_note(f"Simulation seed {SEED}: rerun with SIM_SEED={SEED} SIM_EXAMPLES={EXAMPLES} "
                       f"SIM_STEPS={STEPS}; the steps above are the shortest sequence found.")
            raise
        finally:
            if os.environ.get("SIM_REPORT"):
                print(f"\noperations {dict(Simulation.sim.ops)}\nfaults {dict(faults.injected)}\n5xx {dict(Simulation.sim.answers)}")
            faults.clear()
            clock.set_now(None)
