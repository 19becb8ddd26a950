"""The HTTP API (FastAPI): a router per resource under /v1, problem+json errors, OpenAPI for every parameter."""
from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from app import __version__
from app.api import problems
from app.api.auth import principal
from app.api.routers import allocation, costs, deliveries, finance, health, keys, me, quality, runs, sources
from app.api.routers import recommendations
from app.api.routers import budgets, forecasts
from app.api.routers import fx
from app.runtime import Runtime

DESCRIPTION = """
CloudTally serves cloud costs normalized to [FOCUS](https://focus.finops.org) 1.2, exact to the last decimal.

* Money is always a **decimal string** (never a float), in the billing currency of its row; totals are per currency.
  A cost query with `currency` reports in that one currency, converted with finance's monthly rates (/v1/fx-rates).
* Time windows are `[start, end)` on `ChargePeriodStart`, in UTC.
* Errors are [RFC 9457](https://www.rfc-editor.org/rfc/rfc9457) `application/problem+json` documents that name
  the offending parameter.
* Every /v1 route needs `Authorization: Bearer <key>` (`cloudtally keys create`); 401 without a valid key, 403
  when the key's role (admin, finance, team:<name>) may not do it. A team key sees only its team's costs.
"""


def create_app(runtime: Runtime | None = None, scheduler: bool = False) -> FastAPI:
    """The API; with `scheduler`, the app also runs the ingest scheduler (app.scheduler) for its lifetime."""
    rt = runtime or Runtime.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        rt.init()
        rt.warehouse.keep_readers_open()  # requests reuse one open DuckDB instance (writers still get in)
        rt.warehouse.cache_limit_bytes = rt.settings.api_cache_mb * 2**20  # repeated queries: app.warehouse
        if scheduler:
            from app.scheduler import IngestScheduler

            app.state.scheduler = IngestScheduler(rt)
            app.state.scheduler.start()
        try:
            yield
        finally:
            if app.state.scheduler is not None:
                app.state.scheduler.shutdown()
            rt.warehouse.keep_readers_open(False)
            rt.close()

    app = FastAPI(title="CloudTally", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    app.state.runtime = rt
    app.state.scheduler = None
    problems.install(app)
    app.include_router(health.router)
    authenticated = [Depends(principal)]  # every /v1 route: a valid key (roles are checked per route)
    for router in (costs.router, deliveries.router, allocation.router, sources.router, runs.router, quality.router,
                   finance.router, keys.router, me.router):
        app.include_router(router, prefix="/v1", dependencies=authenticated)
    app.include_router(recommendations.router, prefix="/v1", dependencies=authenticated)
    for router in (budgets.router, forecasts.router, fx.router):  # ITFM (app/itfm) and finance's exchange rates
        app.include_router(router, prefix="/v1", dependencies=authenticated)
    from app.api.routers import alerts  # alerts to Slack, Teams, webhooks (app/alerts)

    app.include_router(alerts.router, prefix="/v1", dependencies=authenticated)
    from app import dashboard

    dashboard.install(app)  # the web page at / (app/dashboard), built on the /v1 routes above
    return app


def app_from_env() -> FastAPI:
    """The app of one worker process of `cloudtally serve --workers N` (uvicorn imports this factory in each
    worker): the runtime from the environment (CLOUDTALLY_*), no scheduler (the serving parent process runs it)."""
    return create_app(Runtime.from_env(), scheduler=False)
