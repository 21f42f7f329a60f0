"""The daily job: renew every wallet whose cycle ended on or before a moment.

Due wallets are found through the sparse `by_renewal` index, shard by shard, so the job's
requests grow with the wallets due, not with all wallets."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterator

from ..errors import NotFound
from .models import Wallet
from .store import get_wallet
from .wallets import RENEW_SHARDS, renew_due


@dataclass
class Report:
    moment: datetime
    due: int = 0
    renewed: int = 0
    cycles: int = 0
    granted: int = 0
    expired: int = 0
    renewed_ids: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"renew as of {self.moment.strftime('%Y-%m-%dT%H:%M:%SZ')}: {self.due} wallet(s) due, "
                f"{self.renewed} renewed, {self.cycles} cycle(s) closed, {self.granted} credits granted, "
                f"{self.expired} credits expired")


def due_wallets(moment: datetime) -> Iterator[str]:
    ts = int(moment.timestamp())
    for shard in range(RENEW_SHARDS):
        for item in Wallet.by_renewal.query(f"r{shard}", Wallet.renews_at <= ts,
                                             attributes_to_get=["pk"]):
            yield item.pk


def renew_one(workspace_id: str, moment: datetime, report: Report) -> None:
    """Safe to call twice for the same wallet and moment: the second finds nothing due."""
    for _ in range(5):
        try:
            w = get_wallet(workspace_id)
        except NotFound:
            return
        if int(w.cycle_end) > int(moment.timestamp()):
            return
        done = renew_due(w, moment)
        if done is not None:
            report.renewed += 1
            report.cycles += done.cycles
            report.granted += done.granted
            report.expired += done.expired
            report.renewed_ids.append(workspace_id)
            return


def run(moment: datetime, progress: bool = False) -> Report:
    report = Report(moment)
    ids = sorted(set(due_wallets(moment)))
    report.due = len(ids)
    if progress and len(ids) > 50:
        from tqdm import tqdm

        ids = tqdm(ids, unit="wallet")
    for workspace_id in ids:
        renew_one(workspace_id, moment, report)
    return report
