"""`cloudtally keys …` (registered in app.cli): create, list and revoke API keys. The keys and roles are
app.access."""
from __future__ import annotations

import json

import typer
from rich.table import Table

from app.cli_common import err, fail, out, runtime

keys_app = typer.Typer(help="API keys: create (shown once), list, revoke. Roles: admin, finance, team:<name>.",
                       no_args_is_help=True)


@keys_app.command("create")
def keys_create(
    role: str = typer.Option(..., "--role", help="admin (everything, key management, rule writes), finance (all "
                             "costs, ledger, finance endpoints, closing months) or team:<name> (that team's "
                             "allocated costs only)."),
    name: str = typer.Option(..., "--name", help="Who or what uses the key."),
) -> None:
    """Create a key and print it: this is the only time it is shown (only its HMAC digest is stored)."""
    from app import access

    rt = runtime()
    try:
        view, key = access.create_key(rt, name, role)
    except access.KeyError_ as exc:
        fail(str(exc), 2)
    err.print(f"created key {view['prefix']} ({view['name']}, role {view['role']}, id {view['id']}); "
              "store it now, it is not shown again:", highlight=False)
    print(key)


@keys_app.command("list")
def keys_list(
    revoked: bool = typer.Option(True, "--revoked/--active-only", help="Include revoked keys."),
    output: str = typer.Option("table", "--output", help="table or json."),
) -> None:
    """Keys with their role, prefix and times (never the key itself)."""
    from app import access

    rt = runtime()
    with rt.sessions() as session:
        _, views = access.list_keys(session, limit=1_000_000, include_revoked=revoked)
    if output == "json":
        print(json.dumps(views, indent=2))
        return
    table = Table(title="API keys")
    for col in ("id", "name", "role", "prefix", "created_at", "last_used_at", "revoked_at"):
        table.add_column(col)
    for v in views:
        table.add_row(*(v[c] or "" for c in ("id", "name", "role", "prefix", "created_at", "last_used_at",
                                             "revoked_at")))
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(key: str = typer.Argument(..., help="The key's id or its ct_<prefix>.")) -> None:
    """Revoke a key: the next request made with it gets a 401."""
    from app import access

    rt = runtime()
    try:
        view = access.revoke_key(rt, key)
    except access.KeyError_ as exc:
        fail(str(exc))
    out.print(f"revoked {view['prefix']} ({view['name']}, role {view['role']}) at {view['revoked_at']}")

