"""API keys, roles and the team scope every cost query runs under.

A key is `ct_<prefix>_<secret>`: shown once at creation; the control DB keeps the prefix (to find the row) and
HMAC-SHA256(server secret, whole key) (to check it). The server secret comes from CLOUDTALLY_API_KEY_SECRET, or is
generated once into <data_dir>/api-key-secret with mode 0600.

Roles: `admin` (everything, key management, rule writes), `finance` (all costs, ledger, finance endpoints, no
writes but closing a month), `team:<name>` (only costs allocated to that team). A key's scope is None (sees all)
for admin and finance, the team's name for a team key; app.costs applies it to every query.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select, update

from app.control import ApiKey, utcnow

ROLES = ("admin", "finance", "team:<name>")
TEAM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
KEY_FORMAT = re.compile(r"^ct_([0-9a-f]{12})_([A-Za-z0-9_-]{32,64})$")
SECRET_FILE = "api-key-secret"
# last_used_at is written at most this often per key (the check itself reads the row on every request).
LAST_USED_RESOLUTION = timedelta(seconds=60)

Scope = str | None  # None: all costs (admin, finance); a team name: only that team's allocated costs


class ScopeForbidden(Exception):
    """The request names something outside the key's scope (another team): 403, naming the parameter."""

    def __init__(self, parameter: str, message: str):
        self.parameter, self.message = parameter, message
        super().__init__(f"{parameter}: {message}")


class KeyError_(ValueError):
    """A bad role, name or unknown key id given to key management."""


@dataclass(frozen=True)
class Principal:
    key_id: str | None
    name: str
    role: str

    @property
    def team(self) -> str | None:
        return self.role[5:] if self.role.startswith("team:") else None

    @property
    def scope(self) -> Scope:
        return self.team

    def allowed(self, *roles: str) -> bool:
        """roles: 'admin', 'finance', 'team' (any team key)."""
        return self.role in roles or ("team" in roles and self.team is not None)


OPEN = Principal(None, "auth disabled", "admin")


def validate_role(role: str) -> str:
    role = role.strip()
    if role in ("admin", "finance"):
        return role
    if role.startswith("team:") and TEAM_NAME.match(role[5:]):
        return role
    raise KeyError_(f"role {role!r} is not admin, finance or team:<name> (letters, digits, . _ -)")


_SECRETS: dict[str, bytes] = {}  # secret file -> its content, read once per process


def server_secret(settings) -> bytes:
    """The HMAC key: the setting, else the data dir's secret file (created once, 0600, never overwritten)."""
    if settings.api_key_secret:
        return settings.api_key_secret.encode()
    path = (Path(settings.data_dir) / SECRET_FILE).resolve()
    cached = _SECRETS.get(str(path))
    if cached is not None:
        return cached
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it first: use theirs
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))
    text = path.read_text().strip()
    if len(text) < 32:
        raise RuntimeError(f"{path} holds no usable secret (expected 64 hex characters)")
    _SECRETS[str(path)] = text.encode()
    return _SECRETS[str(path)]


def digest(secret: bytes, key: str) -> str:
    return hmac.new(secret, key.encode(), hashlib.sha256).hexdigest()


def key_view(k: ApiKey) -> dict:
    def iso(v: datetime | None) -> str | None:
        return v.isoformat().replace("+00:00", "Z") if v else None

    return {"id": k.id, "name": k.name, "role": k.role, "prefix": f"ct_{k.prefix}", "created_at": iso(k.created_at),
            "last_used_at": iso(k.last_used_at), "revoked_at": iso(k.revoked_at)}


def create_key(rt, name: str, role: str) -> tuple[dict, str]:
    """A new key: its view and the key itself (the only time it is ever available)."""
    name = name.strip()
    if not name or len(name) > 200:
        raise KeyError_("name must be 1 to 200 characters")
    role = validate_role(role)
    secret = server_secret(rt.settings)
    prefix = secrets.token_hex(6)
    key = f"ct_{prefix}_{secrets.token_urlsafe(32)}"
    with rt.sessions() as session:
        row = ApiKey(name=name, role=role, prefix=prefix, digest=digest(secret, key))
        session.add(row)
        session.commit()
        return key_view(row), key


def list_keys(session, limit: int = 100, offset: int = 0, include_revoked: bool = True) -> tuple[int, list[dict]]:
    stmt = select(ApiKey)
    if not include_revoked:
        stmt = stmt.where(ApiKey.revoked_at.is_(None))
    total = session.scalar(select(func.count()).select_from(stmt.subquery()))
    rows = session.scalars(stmt.order_by(ApiKey.created_at.desc(), ApiKey.id).limit(limit).offset(offset))
    return total, [key_view(k) for k in rows]


def revoke_key(rt, ident: str) -> dict:
    """Revoke by id or by prefix (ct_xxxxxxxxxxxx); effective for the very next request."""
    ident = ident.strip()
    prefix = ident[3:] if ident.startswith("ct_") else ident
    with rt.sessions() as session:
        row = session.scalar(select(ApiKey).where((ApiKey.id == ident) | (ApiKey.prefix == prefix[:12])))
        if row is None:
            raise KeyError_(f"no API key {ident!r}")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            session.commit()
        return key_view(row)


def authenticate(rt, key: str | None) -> Principal | None:
    """The key's principal, or None for a missing, malformed, unknown or revoked key. Reads the control DB on
    every call: a revocation counts from the next request on."""
    if not key:
        return None
    m = KEY_FORMAT.match(key.strip())
    if m is None:
        return None
    with rt.sessions() as session:
        row = session.scalar(select(ApiKey).where(ApiKey.prefix == m.group(1)))
        if row is None or row.revoked_at is not None:
            return None
        if not hmac.compare_digest(row.digest, digest(server_secret(rt.settings), key.strip())):
            return None
        now = utcnow()
        if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
            session.execute(update(ApiKey).where(ApiKey.id == row.id).values(last_used_at=now))
            session.commit()
        return Principal(row.id, row.name, row.role)


def scope_explain_line(explained: dict, scope: Scope) -> dict:
    """A line's explanation as a team key may see it: 403 unless a part of the line is the team's; only the team's
    parts; no split computation (other teams' shares and drivers) and no whole-line amounts when other teams share
    the line."""
    if scope is None:
        return explained
    parts = explained.get("parts") or []
    own = [p for p in parts if p.get("team") == scope]
    if not own:
        raise ScopeForbidden("line_id", f"line {explained['line']['line_id']} is not allocated to team {scope!r}")
    out = {k: v for k, v in explained.items() if k != "split"}
    out["parts"] = own
    if len(own) != len(parts):
        out["line"] = {k: (None if k in ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost") else v)
                       for k, v in explained["line"].items()}
        out["redacted"] = "the line is shared with other teams: only this team's parts and amounts are shown"
    return out


def scope_group_filters(filters: dict[str, str], scope: Scope) -> dict[str, str]:
    """Group filters (team, service, cost_center, environment) under a scope: team is forced to the key's team,
    naming another is a 403."""
    if scope is None:
        return filters
    if filters.get("team", scope) != scope:
        raise ScopeForbidden("team", f"this key reads team {scope!r} only, not {filters['team']!r}")
    return {**filters, "team": scope}
