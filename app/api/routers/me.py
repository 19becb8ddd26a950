"""Who the caller is: the key's name, role and team, and whether authentication is disabled (the demo). The
dashboard calls it first to decide between asking for a key and the open demo mode, and which views to show."""
from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from app.access import Principal
from app.api.auth import principal
from app.api.deps import get_runtime
from app.api.problems import PROBLEM_RESPONSES
from app.runtime import Runtime

router = APIRouter(tags=["me"])


class Me(BaseModel):
    name: str = Field(description="The key's name (`auth disabled` in the open demo mode).")
    role: str = Field(description="admin, finance or team:<name>.", examples=["team:payments"])
    team: str | None = Field(description="The team a team key is scoped to; null for admin and finance.")
    auth: Literal["enabled", "disabled"] = Field(
        description="`disabled` when the server runs with CLOUDTALLY_AUTH=disabled (the local demo): no key needed, "
                    "everyone is admin.")
    may: list[Literal["costs", "budgets", "recommendations", "finance", "sources", "data_quality",
                      "allocation_coverage", "keys"]] = Field(
        description="What this key may read: `costs`, `budgets` (with forecasts) and `recommendations` (a team "
                    "key: its team's only), `finance` (monthly totals), `sources` (sources, ledger, ingest runs), "
                    "`data_quality`, `allocation_coverage`, `keys`.")


@router.get("/me", summary="The caller's key, role and team, and whether auth is disabled", response_model=Me,
            responses=PROBLEM_RESPONSES)
def get_me(who: Principal = Depends(principal), rt: Runtime = Depends(get_runtime)) -> Me:
    """Any valid key (401 without one, unless authentication is disabled). A client such as the dashboard calls it
    without a key first: 200 with `auth: disabled` means the open demo mode, 401 means it must ask for a key."""
    may = ["costs", "budgets", "recommendations"]
    if who.allowed("admin", "finance"):
        may += ["finance", "sources", "data_quality", "allocation_coverage"]
    if who.allowed("admin"):
        may.append("keys")
    return Me(name=who.name, role=who.role, team=who.team,
              auth="disabled" if rt.settings.auth == "disabled" else "enabled", may=may)
