"""GCP list prices from the Cloud Billing Catalog API (google-cloud-billing's CloudCatalogClient).

With the source option `list_prices=catalog`, discovery fetches the public list prices of the SKUs of every
service the delivery's rows name (`list_services` for the names, `list_skus` per service; USD, the catalog's
currency) and writes them, with the fetch time, beside the cached data as `sku_prices-<YYYY-MM-DD>.parquet`.
That file travels with the delivery; loading it stores the prices in the warehouse table `gcp_sku_prices` (one
row per SKU and pricing tier, with `fetched_at`), which the mapping joins to fill ListUnitPrice and ListCost where
the export has no `cost_at_list` (the standard export never has it). A price is used only when the SKU's catalog
usage unit is the row's pricing unit (`hour`, `gibibyte month`, ...); the list unit price is the first non-zero
tier (a free tier is a price reduction, not the list price), converted with the row's currency_conversion_rate.
(The optimizers do not read the table yet.) A fetch is reused for `list_prices_max_age_days` (default 7).

Options: `catalog_endpoint` (another Catalog endpoint, for tests), `auth=none` (anonymous, test endpoints only);
credentials otherwise from Application Default Credentials. The API needs the Cloud Billing API enabled on the
credentials' project; no billing-account role is needed for public prices.

The table is created by warehouse migration `migrations/warehouse/0003_gcp_sku_prices.sql`.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Mapping

import duckdb

from connectors.base import IngestError, LocalFile, RemoteFile

PRICE_TABLE = "gcp_sku_prices"  # migrations/warehouse/0003_gcp_sku_prices.sql


def make_client(options: Mapping[str, str]):
    from google.cloud.billing_v1.services.cloud_catalog import CloudCatalogClient

    kwargs: dict = {"transport": "rest"}
    if options.get("catalog_endpoint"):
        kwargs["client_options"] = {"api_endpoint": options["catalog_endpoint"]}
    if options.get("auth") == "none":
        from google.auth.credentials import AnonymousCredentials

        kwargs["credentials"] = AnonymousCredentials()
    try:
        return CloudCatalogClient(**kwargs)
    except Exception as exc:  # google.auth.exceptions.DefaultCredentialsError and friends
        raise IngestError(f"cannot create a Cloud Billing Catalog client: {exc}") from exc


def _money(units, nanos) -> Decimal:
    return Decimal(int(units or 0)) + Decimal(int(nanos or 0)) / Decimal(1_000_000_000)


def fetch_prices(client, service_ids: list[str], fetched_at: datetime):
    """The catalog's current tiered list prices of the services' SKUs, as an Arrow table (one row per tier)."""
    import pyarrow as pa
    from google.api_core import exceptions as gexc

    wanted = set(service_ids)
    rows = []
    try:
        names = {s.service_id: s.display_name for s in client.list_services() if s.service_id in wanted}
        for service_id in sorted(wanted):
            for sku in client.list_skus(parent=f"services/{service_id}"):
                for info in list(sku.pricing_info)[:1]:  # the current pricing
                    expr = info.pricing_expression
                    effective = info.effective_time
                    for rate in expr.tiered_rates:
                        rows.append({
                            "service_id": service_id, "service_name": names.get(service_id),
                            "sku_id": sku.sku_id, "sku_description": sku.description,
                            "resource_family": sku.category.resource_family, "usage_type": sku.category.usage_type,
                            "service_regions": list(sku.service_regions), "usage_unit": expr.usage_unit,
                            "usage_unit_description": expr.usage_unit_description,
                            "currency": rate.unit_price.currency_code or "USD",
                            "tier_start": Decimal(repr(rate.start_usage_amount)),
                            "unit_price": _money(rate.unit_price.units, rate.unit_price.nanos),
                            "effective_time": effective if effective else None, "fetched_at": fetched_at,
                        })
    except gexc.GoogleAPICallError as exc:
        raise IngestError(f"Cloud Billing Catalog request failed: {getattr(exc, 'message', exc)}") from exc
    dec = pa.decimal128(38, 18)
    schema = pa.schema([
        ("service_id", pa.string()), ("service_name", pa.string()), ("sku_id", pa.string()),
        ("sku_description", pa.string()), ("resource_family", pa.string()), ("usage_type", pa.string()),
        ("service_regions", pa.list_(pa.string())), ("usage_unit", pa.string()),
        ("usage_unit_description", pa.string()), ("currency", pa.string()), ("tier_start", dec),
        ("unit_price", dec), ("effective_time", pa.timestamp("us", tz="UTC")),
        ("fetched_at", pa.timestamp("us", tz="UTC"))])
    return pa.Table.from_pylist(rows, schema=schema)


def _service_ids(files: list[RemoteFile]) -> list[str]:
    """Distinct service.id of the rows (read locally with DuckDB; remote files are not read here)."""
    from connectors.gcp import export
    from connectors.storage import is_remote, sha256_of

    ids: set[str] = set()
    con = duckdb.connect()
    try:
        for f in files:
            if is_remote(f.uri):
                continue
            path = Path(f.uri)
            local = LocalFile(f.uri, path, path.stat().st_size, sha256_of(path))
            plan = export.plan_file(con, export.open_export_file(con, local))
            if "service.id" in plan.fields:
                ref = export.value_sql(plan.fields["service.id"])
                ids.update(v for (v,) in con.execute(
                    f"SELECT DISTINCT {ref} FROM {plan.opened.relation}").fetchall() if v)
    finally:
        con.close()
    return sorted(ids)


def prices_file_for(files: list[RemoteFile], options: Mapping[str, str], cache: Path | None = None) -> RemoteFile | None:
    """The catalog prices of the files' services as a Parquet file (fetched, or reused while fresh)."""
    import pyarrow.parquet as pq

    folder = Path(options["cache_dir"]).expanduser() if options.get("cache_dir") else cache
    if folder is None:
        from app.settings import get_settings

        folder = get_settings().data_dir / "gcp-cache" / "catalog"
    folder.mkdir(parents=True, exist_ok=True)
    services = _service_ids(files)
    if not services:
        return None
    max_age = timedelta(days=int(options.get("list_prices_max_age_days", 7)))
    now = datetime.now(timezone.utc)
    for existing in sorted(folder.glob("sku_prices-*.parquet"), reverse=True):
        day = datetime.strptime(existing.stem.split("-", 1)[1], "%Y-%m-%d").replace(tzinfo=timezone.utc)
        have = set(pq.read_table(existing, columns=["service_id"]).column("service_id").to_pylist())
        if now - day < max_age and set(services) <= have:
            return RemoteFile(str(existing), existing.stat().st_size, existing.name)
        break
    table = fetch_prices(make_client(options), services, now)
    dest = folder / f"sku_prices-{now:%Y-%m-%d}.parquet"
    pq.write_table(table, dest)
    return RemoteFile(str(dest), dest.stat().st_size, f"{dest.name}|{now.isoformat()}")


def store_prices_file(con: duckdb.DuckDBPyConnection, path: Path) -> int:
    """Cache a fetched price file in the warehouse: its SKUs' rows replace older ones. Returns rows stored."""
    rel = f"read_parquet('{str(path).replace(chr(39), chr(39) * 2)}')"
    con.begin()
    try:
        con.execute(f"DELETE FROM {PRICE_TABLE} WHERE sku_id IN (SELECT sku_id FROM {rel})")
        con.execute(f"INSERT INTO {PRICE_TABLE} BY NAME SELECT * FROM {rel}")
        con.commit()
    except BaseException:
        con.rollback()
        raise
    return con.execute(f"SELECT count(*) FROM {rel}").fetchone()[0]
