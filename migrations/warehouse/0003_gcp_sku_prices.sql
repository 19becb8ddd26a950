-- Public list prices of Google Cloud SKUs from the Cloud Billing Catalog API (connectors/gcp/catalog.py), one row
-- per SKU and pricing tier, with the time they were fetched. The GCP mapping fills ListUnitPrice/ListCost from it
-- where the billing export has no cost_at_list.
CREATE TABLE gcp_sku_prices (
    service_id VARCHAR NOT NULL,
    service_name VARCHAR,
    sku_id VARCHAR NOT NULL,
    sku_description VARCHAR,
    resource_family VARCHAR,
    usage_type VARCHAR,
    service_regions VARCHAR[],
    usage_unit VARCHAR,
    usage_unit_description VARCHAR,
    currency VARCHAR NOT NULL,
    tier_start DECIMAL(38,18) NOT NULL,
    unit_price DECIMAL(38,18) NOT NULL,
    effective_time TIMESTAMPTZ,
    fetched_at TIMESTAMPTZ NOT NULL
);
