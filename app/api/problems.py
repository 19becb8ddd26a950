"""RFC 9457 problem details for every error the API returns, naming the offending parameter where there is one."""
from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.access import ScopeForbidden
from app.allocation.rules import RulesInvalid
from app.costs import QueryError
from app.finance import ReconciliationError
from app.warehouse import WarehouseBusy

PROBLEM_JSON = "application/problem+json"


class ParameterError(BaseModel):
    parameter: str = Field(description="Name of the query or path parameter at fault.")
    detail: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = Field("about:blank", description="URI identifying the problem type.")
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[ParameterError] | None = Field(None, description="One entry per invalid parameter.")


PROBLEM_RESPONSES = {
    400: {"model": Problem, "content": {PROBLEM_JSON: {}}, "description": "Invalid parameter (named in `errors`)."},
    401: {"model": Problem, "content": {PROBLEM_JSON: {}},
          "description": "Missing, unknown or revoked API key (`Authorization: Bearer <key>`)."},
    403: {"model": Problem, "content": {PROBLEM_JSON: {}},
          "description": "The key's role may not do this, or the request names another team than the key's."},
    404: {"model": Problem, "content": {PROBLEM_JSON: {}}, "description": "No such resource."},
    503: {"model": Problem, "content": {PROBLEM_JSON: {}}, "description": "The warehouse is busy; retry."},
}


def problem(status: int, title: str, detail: str | None = None, *, instance: str | None = None,
            errors: list[dict] | None = None, headers: dict | None = None, type_: str = "about:blank") -> JSONResponse:
    body = {"type": type_, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        errors = []
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ()) if p not in ("query", "path", "body", "header")]
            errors.append({"parameter": ".".join(loc) or "request", "detail": err.get("msg", "invalid")})
        names = ", ".join(e["parameter"] for e in errors)
        return problem(400, "Invalid request parameter", f"invalid value for {names}",
                       instance=str(request.url.path), errors=errors)

    @app.exception_handler(QueryError)
    async def _query(request: Request, exc: QueryError):
        return problem(400, "Invalid request parameter", f"{exc.parameter}: {exc.message}",
                       instance=str(request.url.path), errors=[{"parameter": exc.parameter, "detail": exc.message}])

    @app.exception_handler(ScopeForbidden)
    async def _scope(request: Request, exc: ScopeForbidden):
        return problem(403, "Forbidden", f"{exc.parameter}: {exc.message}", instance=str(request.url.path),
                       errors=[{"parameter": exc.parameter, "detail": exc.message}],
                       type_="https://cloudtally.dev/problems/out-of-scope")

    @app.exception_handler(ReconciliationError)
    async def _reconcile(request: Request, exc: ReconciliationError):
        return problem(500, "Totals do not reconcile", str(exc), instance=str(request.url.path),
                       type_="https://cloudtally.dev/problems/reconciliation")

    @app.exception_handler(RulesInvalid)
    async def _rules(request: Request, exc: RulesInvalid):
        errors = [{"parameter": (f"rules[{p.rule}].{p.field}" if p.rule is not None else p.field),
                   "detail": p.message} for p in exc.problems]
        return problem(400, "Invalid allocation rules", str(exc), instance=str(request.url.path), errors=errors,
                       type_="https://cloudtally.dev/problems/invalid-rules")

    @app.exception_handler(WarehouseBusy)
    async def _busy(request: Request, exc: WarehouseBusy):
        return problem(503, "Warehouse busy", "another process is writing to the warehouse; retry shortly",
                       instance=str(request.url.path), headers={"Retry-After": "5"})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        return problem(exc.status_code, _TITLES.get(exc.status_code, "Error"), str(exc.detail),
                       instance=str(request.url.path), headers=getattr(exc, "headers", None))


_TITLES = {404: "Not found", 405: "Method not allowed", 401: "Unauthorized", 403: "Forbidden"}
