-- Daily rollups (app/rollups.py): the cost lines summed per UTC day and the dimensions the API groups on most,
-- one row set per allocation part (team, cost_center from the parts) and, for lines not allocated (yet), per line
-- (allocated = false). Rebuilt per billing period when the period's allocation stamp changed; /v1/costs reads them
-- only while they are current (rollup_state.data_version = warehouse_state.data_version and every period's
-- stamp matches allocation_periods), else the lines.
CREATE TABLE cost_rollup_daily (
    "BillingPeriodStart" TIMESTAMPTZ NOT NULL,
    "ChargePeriodStart" TIMESTAMPTZ NOT NULL,  -- the day (00:00 UTC)
    "ProviderName" VARCHAR,
    "ServiceName" VARCHAR,
    "SubAccountId" VARCHAR,
    "RegionId" VARCHAR,
    "ChargeCategory" VARCHAR,
    "BillingCurrency" VARCHAR,
    allocated BOOLEAN NOT NULL,
    team VARCHAR,
    cost_center VARCHAR,
    "BilledCost" DECIMAL(38,18),
    "EffectiveCost" DECIMAL(38,18),
    "ListCost" DECIMAL(38,18),
    "ContractedCost" DECIMAL(38,18),
    n BIGINT NOT NULL  -- parts and unallocated lines summed
);

-- The same, by allocation only (provider, currency, team, cost_center per day): what team dashboards and finance
-- totals read; orders of magnitude smaller than the lines.
CREATE TABLE cost_rollup_alloc_daily (
    "BillingPeriodStart" TIMESTAMPTZ NOT NULL,
    "ChargePeriodStart" TIMESTAMPTZ NOT NULL,
    "ProviderName" VARCHAR,
    "BillingCurrency" VARCHAR,
    allocated BOOLEAN NOT NULL,
    team VARCHAR,
    cost_center VARCHAR,
    "BilledCost" DECIMAL(38,18),
    "EffectiveCost" DECIMAL(38,18),
    "ListCost" DECIMAL(38,18),
    "ContractedCost" DECIMAL(38,18),
    n BIGINT NOT NULL
);

-- Per billing period: the allocation stamp (allocation_periods.allocated_at, NULL if the period had no allocation)
-- the rollup was built from.
CREATE TABLE rollup_periods (
    "BillingPeriodStart" TIMESTAMPTZ PRIMARY KEY,
    allocated_at TIMESTAMPTZ,
    built_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE rollup_state (data_version BIGINT NOT NULL);
INSERT INTO rollup_state VALUES (-1);
