"""The credits table, as PynamoDB models.

One table holds, per workspace partition (`pk` = workspace id):
- the wallet (`sk` = "wallet"): buckets, open holds, members, plan and cycle;
- its ledger entries (`sk` = the entry's idempotency identity, e.g. "op#<key>", "settle#<hold>",
  "grant#<epoch>#<cycle start>"): a put with attribute_not_exists(sk) makes each business effect happen once.
And per person (`pk` = "user#<id>", `sk` = "ws#<workspace>"): the workspaces they belong to.

The local secondary index `by_seq` orders a partition by `seq`: entries carry their ULID, the
wallet carries "~" so that it sorts above every entry. One query newest-first therefore returns
the wallet and the latest entries together, which is how a ledger page or the balance after an
entry costs one read.
"""
from __future__ import annotations

from pynamodb.attributes import (
    MapAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, LocalSecondaryIndex
from pynamodb.models import Model

from .. import config

WALLET_SK = "wallet"
WALLET_SEQ = "~"  # sorts after every ULID


class BySeq(LocalSecondaryIndex):
    class Meta:
        index_name = "by_seq"
        projection = AllProjection()

    pk = UnicodeAttribute(hash_key=True)
    seq = UnicodeAttribute(range_key=True)


class ByRenewal(GlobalSecondaryIndex):
    """Sparse: only wallets whose next cycle can be granted carry `renew_shard`/`renews_at`."""

    class Meta:
        index_name = "by_renewal"
        projection = AllProjection()

    renew_shard = UnicodeAttribute(hash_key=True)
    renews_at = NumberAttribute(range_key=True)


class _Base(Model):
    class Meta:
        table_name = "credits"
        region = "eu-west-1"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)


class Wallet(_Base):
    class Meta(_Base.Meta):
        pass

    seq = UnicodeAttribute(default=WALLET_SEQ)
    name = UnicodeAttribute()
    kind = UnicodeAttribute()  # personal | team
    created_at = NumberAttribute()
    # Buckets. Credits in open holds are out of plan/topup and counted in held.
    plan = NumberAttribute(default=0)
    topup = NumberAttribute(default=0)
    held = NumberAttribute(default=0)
    # hold id -> {p, t, c (cycle start), x (expires), a (actor)}
    holds = MapAttribute(default=dict)
    # user id -> {role, cap}; a charge's condition checks membership in the same write.
    members = MapAttribute(default=dict)
    # user id -> credits the member may still spend this cycle (only capped members).
    room = MapAttribute(default=dict)
    last = UnicodeAttribute(default="")  # seq of the newest entry: entries commit in seq order
    # Plan and cycle.
    plan_id = UnicodeAttribute(default="free")
    interval = UnicodeAttribute(null=True)
    status = UnicodeAttribute(default="active")
    anchor = NumberAttribute()  # the moment cycles are counted from
    epoch = NumberAttribute(default=0)  # +1 each time the wallet starts a plan: names its cycles
    cycle_start = NumberAttribute()
    cycle_end = NumberAttribute()
    paid_until = NumberAttribute(null=True)  # paid plans: the end of the last period paid for
    contract_credits = NumberAttribute(null=True)  # enterprise: credits per cycle by contract
    # Billing, as the wallet knows it (no Stripe types here: plain ids and moments).
    customer_id = UnicodeAttribute(null=True)
    sub_id = UnicodeAttribute(null=True)
    sub_seen = UnicodeAttribute(null=True)  # newest subscription state applied: "created:event"
    sub_ended = UnicodeAttribute(null=True)  # the last subscription that ended: late events are ignored
    subs_ended = UnicodeSetAttribute(null=True)  # every subscription that ended (Stripe never restarts one)
    ends_at = NumberAttribute(null=True)  # cancelled at period end: when it returns to free
    pending = MapAttribute(null=True)  # a scheduled downgrade: {plan, interval, effective_at}
    open_checkout = UnicodeAttribute(null=True)  # the newest subscription checkout session offered
    schedule_seen = UnicodeAttribute(null=True)  # newest schedule state applied: "created:event"
    renew_shard = UnicodeAttribute(null=True)
    renews_at = NumberAttribute(null=True)

    by_seq = BySeq()
    by_renewal = ByRenewal()

    def open_holds(self) -> dict[str, dict]:
        return plain(self.holds)

    def member_map(self) -> dict[str, dict]:
        return plain(self.members)


def plain(value) -> dict:
    """A raw map attribute as a plain dict."""
    return value.as_dict() if isinstance(value, MapAttribute) else dict(value or {})


class Entry(_Base):
    """An immutable ledger entry. Balances after it are derived from the wallet (see module doc)."""

    class Meta(_Base.Meta):
        pass

    seq = UnicodeAttribute()  # ULID: entry_id and time order
    kind = UnicodeAttribute()
    plan_delta = NumberAttribute(default=0)
    topup_delta = NumberAttribute(default=0)
    held_delta = NumberAttribute(default=0)
    ref = MapAttribute(default=dict)  # what caused it: {type, id, ...}
    actor = UnicodeAttribute()
    # For idempotent operations: a digest of the request, and what the first answer said.
    fp = UnicodeAttribute(null=True)
    answer = MapAttribute(null=True)

    by_seq = BySeq()


class Membership(_Base):
    """pk = user#<id>, sk = ws#<workspace>: lets GET /v1/me list a person's workspaces."""

    class Meta(_Base.Meta):
        pass

    workspace_id = UnicodeAttribute()
    name = UnicodeAttribute()
    kind = UnicodeAttribute()
    role = UnicodeAttribute()


class TopupRecord(_Base):
    """pk = pi#<payment intent>, sk = "topup": which wallet a paid top-up went to, so that a
    refund or dispute of that payment finds the credits to take back, and how many it took."""

    class Meta(_Base.Meta):
        pass

    workspace_id = UnicodeAttribute(null=True)  # null: a refund or dispute came before the top-up
    session_id = UnicodeAttribute(null=True)
    credits = NumberAttribute(null=True)
    amount = NumberAttribute(null=True)  # money paid, minor units
    taken = NumberAttribute(default=0)  # credits taken back so far
    reversed = NumberAttribute(default=0)  # the most money reported refunded or disputed


class SubscriptionLink(_Base):
    """pk = sub#<subscription>, sk = "link": the workspace a Stripe subscription bills. Events
    about a subscription's schedule (a downgrade made in the portal) name only the subscription."""

    class Meta(_Base.Meta):
        pass

    workspace_id = UnicodeAttribute()


MODELS = (Wallet, Entry, Membership, TopupRecord, SubscriptionLink)


CONNECT_TIMEOUT, READ_TIMEOUT = 2, 3  # seconds; DynamoDB answers in milliseconds


def bind(settings: config.Settings | None = None) -> None:
    """Point every model at the configured table and endpoint (PynamoDB reads Meta lazily per
    connection, so resetting `_connection` is enough)."""
    s = settings or config.settings()

    def every(cls):
        yield cls
        for sub in cls.__subclasses__():
            yield from every(sub)

    # Against DynamoDB itself, fail a stuck request fast and let the retries work (botocore's 4
    # attempts, then store.py's budget): PynamoDB's defaults, 15 s and 30 s, outlast the Lambda.
    # The embedded store may pause for a snapshot, so it keeps them.
    timeouts = (CONNECT_TIMEOUT, READ_TIMEOUT) if s.dynamodb_endpoint is None else (15, 30)
    for model in set(every(_Base)):  # billing's stand-in keeps its records here too
        model.Meta.table_name = s.table_name
        model.Meta.region = s.region
        model.Meta.host = s.dynamodb_endpoint
        model.Meta.connect_timeout_seconds, model.Meta.read_timeout_seconds = timeouts
        model._connection = None
    for index in (Wallet.by_seq, Wallet.by_renewal, Entry.by_seq):
        index._connection = None


def create_table(wait: bool = True) -> None:
    """Create the table with both indexes (local store and tests; deployed stages use the template)."""
    if Wallet.exists():
        return
    Wallet.create_table(billing_mode="PAY_PER_REQUEST", wait=wait)
