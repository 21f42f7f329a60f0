"""The one source of 'now' (UTC). Tests and the CLI's --date inject a fixed moment."""
from __future__ import annotations

from datetime import datetime, timezone

_fixed: datetime | None = None


def now() -> datetime:
    return _fixed if _fixed is not None else datetime.now(timezone.utc)


def set_now(moment: datetime | None) -> None:
    global _fixed
    _fixed = moment
