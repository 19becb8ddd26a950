"""API key management (admin keys only): list, create (the key is shown once), revoke."""
from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from app import access
from app.api.auth import ADMIN
from app.api.deps import db_session, get_runtime
from app.api.problems import PROBLEM_RESPONSES, problem
from app.runtime import Runtime

router = APIRouter(prefix="/keys", tags=["api keys"], dependencies=[ADMIN])


class KeyIn(BaseModel):
    name: str = Field(min_length=1, max_length=200, description="Who or what uses the key.", examples=["ci-reports"])
    role: str = Field(description="admin, finance or team:<name>.", examples=["team:payments"],
                      pattern=r"^(admin|finance|team:[A-Za-z0-9][A-Za-z0-9._-]{0,199})$")


class KeyView(BaseModel):
    id: str
    name: str
    role: str
    prefix: str = Field(description="The key's public start (ct_<prefix>), to recognise it.")
    created_at: str | None
    last_used_at: str | None = Field(description="Updated at most once a minute.")
    revoked_at: str | None


class KeyCreated(KeyView):
    key: str = Field(description="The key itself: shown this once, never stored (only its HMAC digest is).")


class KeyPage(BaseModel):
    keys: list[KeyView]
    total: int
    limit: int
    offset: int


@router.get("", summary="List API keys", response_model=KeyPage, responses=PROBLEM_RESPONSES)
def list_keys(
    session: Session = Depends(db_session),
    limit: int = Query(100, ge=1, le=1000, description="Maximum number of keys, newest first."),
    offset: int = Query(0, ge=0, le=1_000_000_000, description="Keys to skip (paging)."),
    revoked: bool = Query(True, description="Include revoked keys."),
) -> dict:
    """Keys with name, role, prefix and times (never the key or its digest)."""
    total, page = access.list_keys(session, limit, offset, include_revoked=revoked)
    return {"keys": page, "total": total, "limit": limit, "offset": offset}


@router.post("", summary="Create an API key", status_code=201, response_model=KeyCreated,
             responses=PROBLEM_RESPONSES)
def create_key(body: KeyIn, request: Request, rt: Runtime = Depends(get_runtime)):
    try:
        view, key = access.create_key(rt, body.name, body.role)
    except access.KeyError_ as exc:
        return problem(400, "Invalid API key request", str(exc), instance=str(request.url.path),
                       errors=[{"parameter": "role", "detail": str(exc)}])
    return JSONResponse({**view, "key": key}, status_code=201)


@router.delete("/{key_id}", summary="Revoke an API key", response_model=KeyView, responses=PROBLEM_RESPONSES)
def revoke_key(key_id: str = Path(description="The key's id or its ct_<prefix>."), rt: Runtime = Depends(get_runtime)):
    """Revoke at once: the very next request with this key is a 401. Revoking twice is harmless."""
    try:
        return access.revoke_key(rt, key_id)
    except access.KeyError_ as exc:
        raise HTTPException(404, str(exc)) from exc
