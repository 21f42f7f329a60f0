"""Plans, packs and the prices of actions. The numbers live in catalog.json (or the file named by
CATALOG_PATH): an operator edits data, not code. Pricing is a pure function of the catalog."""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from .errors import InvalidRequest

DEFAULT_PATH = Path(__file__).with_name("catalog.json")


@dataclass(frozen=True)
class Price:
    price_id: str
    amount: int  # minor units (cents)


@dataclass(frozen=True)
class Plan:
    id: str
    name: str
    workspace_kind: str  # personal | team | any
    rank: int
    credits_per_cycle: int | None  # None: set per contract (enterprise)
    rollover_cap: int
    prices: Mapping[str, Price]
    contract: bool = False

    def allows(self, workspace_kind: str) -> bool:
        return self.workspace_kind in ("any", workspace_kind)


@dataclass(frozen=True)
class Pack:
    id: str
    name: str
    credits: int
    price_id: str
    amount: int


@dataclass(frozen=True)
class Service:
    id: str
    name: str
    options: Mapping[str, Mapping[str, Any]]
    pricing: Mapping[str, Any]

    @property
    def free(self) -> bool:
        credits = self.pricing["credits"]
        values = credits.values() if isinstance(credits, dict) else [credits]
        return all(v == 0 for v in values)


@dataclass(frozen=True)
class Catalog:
    currency: str
    plans: Mapping[str, Plan]
    packs: Mapping[str, Pack]
    services: Mapping[str, Service]
    raw: Mapping[str, Any] = field(repr=False)

    def plan(self, plan_id: str) -> Plan:
        try:
            return self.plans[plan_id]
        except KeyError:
            raise InvalidRequest(f"Unknown plan {plan_id!r}.") from None

    def pack(self, pack_id: str) -> Pack:
        try:
            return self.packs[pack_id]
        except KeyError:
            raise InvalidRequest(f"Unknown pack {pack_id!r}.") from None

    def service(self, service_id: Any) -> Service:
        if not isinstance(service_id, str) or service_id not in self.services:
            raise InvalidRequest(f"Unknown service {service_id!r}.")
        return self.services[service_id]

    def price(self, service_id: Any, options: Any) -> tuple[Service, dict[str, Any], int]:
        """The service, its options with defaults filled in, and the cost in credits."""
        service = self.service(service_id)
        opts = normalize_options(service, options)
        return service, opts, cost(service, opts)

    def by_price_id(self, price_id: str) -> tuple[Plan, str] | Pack | None:
        for plan in self.plans.values():
            for interval, price in plan.prices.items():
                if price.price_id == price_id:
                    return plan, interval
        for pack in self.packs.values():
            if pack.price_id == price_id:
                return pack
        return None

    def public(self) -> dict[str, Any]:
        """GET /v1/catalog."""
        return {
            "currency": self.currency,
            "plans": [
                {
                    "id": p.id,
                    "name": p.name,
                    "workspace_kind": p.workspace_kind,
                    "credits_per_cycle": p.credits_per_cycle,
                    "prices": {
                        interval: {"price_id": pr.price_id, "amount": pr.amount, "currency": self.currency}
                        for interval, pr in p.prices.items()
                    },
                }
                for p in sorted(self.plans.values(), key=lambda p: p.rank)
            ],
            "packs": [
                {"id": k.id, "name": k.name, "credits": k.credits, "price_id": k.price_id,
                 "amount": k.amount, "currency": self.currency}
                for k in self.packs.values()
            ],
            "services": [
                {"id": s.id, "name": s.name, "free": s.free, "options": s.options, "pricing": s.pricing}
                for s in self.services.values()
            ],
        }


def normalize_options(service: Service, options: Any) -> dict[str, Any]:
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise InvalidRequest("options must be an object.")
    unknown = sorted(set(options) - set(service.options))
    if unknown:
        raise InvalidRequest(f"Unknown option {unknown[0]!r} for {service.id}.")
    out: dict[str, Any] = {}
    for name, spec in service.options.items():
        value = options.get(name, spec.get("default"))
        if value is None:
            raise InvalidRequest(f"Option {name!r} is required for {service.id}.")
        if "choices" in spec:
            if value not in spec["choices"]:
                raise InvalidRequest(f"Option {name!r} must be one of {', '.join(spec['choices'])}.")
        else:
            # bool is an int in Python; a client sending true means something else.
            if not isinstance(value, int) or isinstance(value, bool):
                raise InvalidRequest(f"Option {name!r} must be an integer.")
            if not spec["min"] <= value <= spec["max"]:
                raise InvalidRequest(f"Option {name!r} must be between {spec['min']} and {spec['max']}.")
        out[name] = value
    return out


def cost(service: Service, options: Mapping[str, Any]) -> int:
    """Credits for one action: unit price (maybe by an option), times a count or started blocks."""
    pricing = service.pricing
    unit = pricing["credits"]
    if isinstance(unit, dict):
        unit = unit[options[pricing["by"]]]
    quantity = 1
    if "times" in pricing:
        quantity = options[pricing["times"]]
    if "per_started" in pricing:
        block = pricing["per_started"]
        quantity = math.ceil(options[block["option"]] / block["size"])
    return unit * quantity


def load(path: str | os.PathLike | None = None) -> Catalog:
    raw = json.loads(Path(path or DEFAULT_PATH).read_text())
    return Catalog(
        currency=raw["currency"],
        plans={
            p["id"]: Plan(
                id=p["id"],
                name=p["name"],
                workspace_kind=p["workspace_kind"],
                rank=p["rank"],
                credits_per_cycle=p["credits_per_cycle"],
                rollover_cap=p.get("rollover_cap", 0),
                prices={k: Price(**v) for k, v in p["prices"].items()},
                contract=p.get("contract", False),
            )
            for p in raw["plans"]
        },
        packs={k["id"]: Pack(**k) for k in raw["packs"]},
        services={s["id"]: Service(**s) for s in raw["services"]},
        raw=raw,
    )


@lru_cache(maxsize=1)
def catalog() -> Catalog:
    return load(os.environ.get("CATALOG_PATH"))
