-- Allocation (app/allocation): a stable id per cost line, the parts each line is allocated to, which rule version
-- allocated each billing period, and per-version totals for the version diff.

-- x_LineId: filled from the sequence when a delivery inserts its rows (Warehouse.replace_deliveries); a line
-- re-delivered gets a new id. Existing rows are numbered here.
CREATE SEQUENCE cost_line_id START 1;
ALTER TABLE cost_and_usage ADD COLUMN "x_LineId" BIGINT;
UPDATE cost_and_usage SET "x_LineId" = nextval('cost_line_id');

-- One row per part of a line: a line claimed by a plain rule has one part (share 1) holding the line's amounts; a
-- split line has one part per target whose amounts sum to the line's exactly; an unclaimed line has one part with
-- team 'unallocated' and rule_name NULL (reason says why). Sum of parts = cost_and_usage, always.
CREATE TABLE cost_allocation (
    "x_LineId" BIGINT NOT NULL,
    "x_SourceId" VARCHAR NOT NULL,
    "BillingPeriodStart" TIMESTAMPTZ NOT NULL,
    "ChargePeriodStart" TIMESTAMPTZ NOT NULL,
    "BillingCurrency" VARCHAR NOT NULL,
    "ProviderName" VARCHAR NOT NULL,
    rule_name VARCHAR,
    rule_version INTEGER NOT NULL,  -- 0: allocated before any rule version existed (everything unallocated)
    part INTEGER NOT NULL,
    team VARCHAR,  -- NULL: the claiming rule sets other dimensions only
    service VARCHAR,
    cost_center VARCHAR,
    environment VARCHAR,
    dims MAP(VARCHAR, VARCHAR),  -- custom dimensions declared by the rule document
    share DECIMAL(38,18) NOT NULL,
    "BilledCost" DECIMAL(38,18) NOT NULL,
    "EffectiveCost" DECIMAL(38,18) NOT NULL,
    "ListCost" DECIMAL(38,18),
    "ContractedCost" DECIMAL(38,18),
    reason VARCHAR
);

-- Which rule version allocated each billing period, and the fingerprint of the rules effective in it then.
CREATE TABLE allocation_periods (
    "BillingPeriodStart" TIMESTAMPTZ PRIMARY KEY,
    rule_version INTEGER NOT NULL,
    fingerprint VARCHAR NOT NULL,
    allocated_at TIMESTAMPTZ NOT NULL
);

-- Totals of the allocation as each version left it (written when the version is applied, refreshed when an
-- ingest re-allocates a period under it): what the version diff compares.
CREATE TABLE allocation_totals (
    version INTEGER NOT NULL,
    "BillingPeriodStart" TIMESTAMPTZ NOT NULL,
    "ProviderName" VARCHAR NOT NULL,
    "BillingCurrency" VARCHAR NOT NULL,
    team VARCHAR,
    cost_center VARCHAR,
    service VARCHAR,
    "BilledCost" DECIMAL(38,18) NOT NULL,
    "EffectiveCost" DECIMAL(38,18) NOT NULL,
    "ListCost" DECIMAL(38,18),
    "ContractedCost" DECIMAL(38,18)
);
