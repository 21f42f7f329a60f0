"""The shapes of request bodies (validated by pydantic; unknown fields are refused)."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EstimateBody(Body):
    service: StrictStr
    options: dict[str, Any] = Field(default_factory=dict)


class ChargeBody(EstimateBody):
    user_id: StrictStr | None = None
    idempotency_key: StrictStr | None = None


class HoldBody(ChargeBody):
    ttl_seconds: StrictInt | None = None


class CaptureBody(Body):
    credits: StrictInt | None = None


class WorkspaceBody(Body):
    name: StrictStr = Field(min_length=1, max_length=100)
    idempotency_key: StrictStr | None = None


class PlanBody(Body):
    plan: StrictStr
    interval: Literal["month", "year"]


class PackBody(Body):
    pack: StrictStr


class CancelBody(Body):
    when: Literal["period_end", "now"]


class MemberBody(Body):
    role: Literal["owner", "admin", "member"]
    cycle_cap: StrictInt | None = Field(default=None, ge=0, le=10**12)  # absent: unchanged; null: no cap
