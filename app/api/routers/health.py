from __future__ import annotations

from fastapi import APIRouter, Depends
from sqlalchemy import text

from app import __version__
from app.api.deps import db_session, get_runtime
from app.runtime import Runtime
from app.warehouse import Warehouse, WarehouseBusy

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness and store checks")
def healthz(rt: Runtime = Depends(get_runtime), session=Depends(db_session)) -> dict:
    """`ok` when both the control database and the warehouse answer; the warehouse's data version changes with
    every delivery, so clients can cache on it."""
    session.execute(text("SELECT 1"))
    try:
        with rt.warehouse.connect(read_only=True, timeout=1.0) as con:
            warehouse = {"status": "ok", "data_version": Warehouse.data_version(con)}
    except WarehouseBusy:
        warehouse = {"status": "busy"}
    return {"status": "ok", "version": __version__, "control_db": "ok", "warehouse": warehouse}
