"""Authentication and authorization for /v1: `Authorization: Bearer <key>` checked on every request (a router-level
dependency), roles checked per route with `allow(...)`, and the team scope handed to the query layer."""
from __future__ import annotations

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.access import OPEN, Principal, Scope, authenticate
from app.api.deps import get_runtime

bearer = HTTPBearer(auto_error=False, scheme_name="ApiKey",
                    description="An API key from `cloudtally keys create` (or POST /v1/keys): `ct_<prefix>_<secret>`.")

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="cloudtally"'}


def principal(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Principal:
    """The caller: 401 for a missing, malformed, unknown or revoked key (checked against the control DB on every
    request). With CLOUDTALLY_AUTH=disabled (local demo only) everyone is an admin."""
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    rt = get_runtime(request)
    if rt.settings.auth == "disabled":
        request.state.principal = OPEN
        return OPEN
    if credentials is None:
        raise HTTPException(401, "an API key is required: Authorization: Bearer <key>", headers=CHALLENGE)
    found = authenticate(rt, credentials.credentials)
    if found is None:
        raise HTTPException(401, "unknown or revoked API key", headers=CHALLENGE)
    request.state.principal = found
    return found


def allow(*roles: str):
    """A dependency admitting only these roles ('admin', 'finance', 'team' = any team key); others get 403."""

    def check(who: Principal = Depends(principal)) -> Principal:
        if not who.allowed(*roles):
            names = " or ".join("team:<name>" if r == "team" else r for r in roles)
            raise HTTPException(403, f"this needs a key with role {names}; this key's role is {who.role}")
        return who

    return check


def scope(who: Principal = Depends(principal)) -> Scope:
    """None for admin and finance keys; the team's name for a team key."""
    return who.scope


ADMIN = Depends(allow("admin"))
FINANCE = Depends(allow("admin", "finance"))
ANY = Depends(allow("admin", "finance", "team"))
