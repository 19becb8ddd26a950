"""The dashboard: one HTML page at `/` and its static assets (vanilla ES modules, uPlot vendored from npm) under
`/dashboard/static/`. It holds no data and no logic of its own beyond presentation: every figure comes from the
/v1 API with the user's key (or none in the open demo mode), so a key sees on the page exactly what it may read
through the API.

Vendoring: `npm ci && npm run vendor-dashboard` copies uPlot (MIT, version pinned in package.json) with its
LICENSE into static/vendor/uplot/; nothing is fetched from a CDN at run time.
"""
from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parent / "static"
STATIC_URL = "/dashboard/static"

router = APIRouter(tags=["dashboard"])


def _index() -> str:
    return (STATIC / "index.html").read_text(encoding="utf-8")


@router.get("/", summary="The dashboard (HTML page)", response_class=HTMLResponse,
            responses={200: {"content": {"text/html": {}}, "description": "The dashboard's single page."}})
def dashboard() -> HTMLResponse:
    """The web dashboard: spend over time, top movers, a team's page, budgets with their forecast, recommendations,
    data health and allocation coverage, built on the /v1 API. It asks for an API key (kept in the browser's sessionStorage) unless authentication is
    disabled (the demo)."""
    return HTMLResponse(_index(), headers={"Cache-Control": "no-cache"})


def install(app: FastAPI) -> None:
    """Serve the page at `/` and the assets (StaticFiles: ETag and Last-Modified, so reloads revalidate)."""
    app.include_router(router)
    app.mount(STATIC_URL, StaticFiles(directory=STATIC), name="dashboard-static")


def url(host: str, port: int) -> str:
    """The dashboard's address for a server on host:port (what `cloudtally demo` prints)."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else (f"[{host}]" if ":" in host else host)
    return f"http://{shown}:{port}/"
