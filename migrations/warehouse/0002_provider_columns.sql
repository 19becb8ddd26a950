-- Provider columns worth keeping beside FOCUS (custom columns carry FOCUS's x_ prefix), as Azure's FocusCost
-- export names them: the resource group, the meter category and the invoice section. Null where a provider has
-- no such thing. Allocation rules and cost queries can group and filter on them.
ALTER TABLE cost_and_usage ADD COLUMN "x_ResourceGroupName" VARCHAR;
ALTER TABLE cost_and_usage ADD COLUMN "x_SkuMeterCategory" VARCHAR;
ALTER TABLE cost_and_usage ADD COLUMN "x_InvoiceSectionName" VARCHAR;
