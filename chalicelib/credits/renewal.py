"""The daily job: renew every wallet whose cycle ended on or before a moment.

Due wallets are found through the sparse `by_renewal` index, shard by shard, so the job's
requests grow with the wallets due, not with all wallets. A day with more due wallets than one
invocation should handle fans out: batches of wallet ids go to SQS, and each message renews its
batch. Renewing is idempotent, so a message delivered twice changes nothing the second time."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Iterator

from ..errors import NotFound
from .models import Wallet
from .store import get_wallet
from .wallets import RENEW_SHARDS, renew_due


FANOUT_ABOVE = 200  # due wallets one invocation renews itself
BATCH = 25  # wallet ids per SQS message


@dataclass
class Report:
    moment: datetime
    due: int = 0
    queued: int = 0
    messages: int = 0
    renewed: int = 0
    cycles: int = 0
    granted: int = 0
    expired: int = 0
    renewed_ids: list[str] = field(default_factory=list)

    def summary(self) -> str:
        queued = f", {self.queued} queued in {self.messages} message(s)" if self.queued else ""
        return (f"renew as of {self.moment.strftime('%Y-%m-%dT%H:%M:%SZ')}: {self.due} wallet(s) due, "
                f"{self.renewed} renewed, {self.cycles} cycle(s) closed, {self.granted} credits granted, "
                f"{self.expired} credits expired{queued}")


def due_wallets(moment: datetime) -> Iterator[Wallet]:
    """Wallets whose cycle ended by `moment`, as the index holds them (the whole item: its copy
    may lag the table, but renewal's write is conditioned on the wallet it read, so a stale copy
    only costs a fresh read)."""
    ts = int(moment.timestamp())
    for shard in range(RENEW_SHARDS):
        yield from Wallet.by_renewal.query(f"r{shard}", Wallet.renews_at <= ts)


def renew_one(workspace_id: str, moment: datetime, report: Report, seen: Wallet | None = None) -> None:
    """Safe to call twice for the same wallet and moment: the second finds nothing due.
    One read and one write per wallet, unless it was idle for years (CYCLES_PER_WRITE a write)
    or something raced it."""
    counted = False
    for _ in range(50):
        try:
            w, seen = seen or get_wallet(workspace_id), None
        except NotFound:
            return
        while int(w.cycle_end) <= int(moment.timestamp()):
            done = renew_due(w, moment)
            if done is None:
                break  # raced: read again
            if not counted:
                report.renewed += 1
                report.renewed_ids.append(workspace_id)
                counted = True
            report.cycles += done.cycles
            report.granted += done.granted
            report.expired += done.expired
            if done.caught_up:
                return
            w = get_wallet(workspace_id)
        else:
            return


def run(moment: datetime, progress: bool = False, send: Callable[[str], None] | None = None) -> Report:
    """Renew what is due; with `send` (the scheduled job), hand batches to SQS on busy days."""
    report = Report(moment)
    found = {w.pk: w for w in due_wallets(moment)}
    ids = sorted(found)
    report.due = len(ids)
    if send is not None and len(ids) > FANOUT_ABOVE:
        for i in range(0, len(ids), BATCH):
            send(batch_message(moment, ids[i:i + BATCH]))
            report.messages += 1
        report.queued = len(ids)
        return report
    if progress and len(ids) > 50:
        from tqdm import tqdm

        ids = tqdm(ids, unit="wallet")
    for workspace_id in ids:
        renew_one(workspace_id, moment, report, seen=found[workspace_id])
    return report


def batch_message(moment: datetime, workspace_ids: list[str]) -> str:
    return json.dumps({"moment": int(moment.timestamp()), "workspace_ids": workspace_ids})


def run_batch(body: str) -> Report:
    """One SQS message of the fan-out."""
    data = json.loads(body)
    moment = datetime.fromtimestamp(data["moment"], tz=timezone.utc)
    report = Report(moment, due=len(data["workspace_ids"]))
    for workspace_id in data["workspace_ids"]:
        renew_one(workspace_id, moment, report)
    return report


def sqs_sender(queue_name: str) -> Callable[[str], None]:
    """Sends to the renewal queue with botocore (already loaded by PynamoDB; no boto3 needed)."""
    target: dict = {}

    def send(body: str) -> None:
        if not target:  # only a busy day pays for the client and the queue's URL
            import botocore.session

            target["client"] = client = botocore.session.get_session().create_client("sqs")
            target["url"] = client.get_queue_url(QueueName=queue_name)["QueueUrl"]
        target["client"].send_message(QueueUrl=target["url"], MessageBody=body)

    return send
