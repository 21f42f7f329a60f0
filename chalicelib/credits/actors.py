"""Who a wallet change is made by, as the ledger records it."""
from __future__ import annotations

from dataclasses import dataclass

SYSTEM = "system"


@dataclass(frozen=True)
class Actor:
    user_id: str  # the person the change is for (a member of the workspace), or "system"
    via: str | None = None  # the generation service that acted for them, if any

    @property
    def is_service(self) -> bool:
        return self.via is not None

    @classmethod
    def service(cls, service_id: str) -> "Actor":
        """A generation service acting on a hold, for whoever created it."""
        return cls(service_id, via=service_id)

    @property
    def label(self) -> str:
        if self.via is None:
            return self.user_id
        return self.via if self.user_id == self.via else f"{self.user_id} via {self.via}"


SYSTEM_ACTOR = Actor(SYSTEM)
