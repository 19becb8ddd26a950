"""The demo's world: providers, billing accounts, sub accounts, services, meters, workloads and commitments.

Pure data plus the dataclasses that hold it; `app.demo.generator` turns it into FOCUS rows.
"""
from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal as D

DAYS = [date(2026, 8, 1) + timedelta(days=i) for i in range(92)]  # 2026-08-01 .. 2026-10-31
ANOMALY = ("gcp.bq", date(2026, 9, 21), date(2026, 9, 24), 5)  # meter, first day, end day, usage multiplier

SERVICES = {  # alias -> (ServiceName, ServiceCategory, ServiceSubcategory)
    "ec2": ("Amazon Elastic Compute Cloud", "Compute", "Virtual Machines"),
    "ebs": ("Amazon Elastic Block Store", "Storage", "Block Storage"),
    "s3": ("Amazon Simple Storage Service", "Storage", "Object Storage"),
    "rds": ("Amazon Relational Database Service", "Databases", "Relational Databases"),
    "lambda": ("AWS Lambda", "Compute", "Serverless Compute"),
    "eks": ("Amazon Elastic Kubernetes Service", "Compute", "Containers"),
    "cloudfront": ("Amazon CloudFront", "Networking", "Content Delivery"),
    "dynamodb": ("Amazon DynamoDB", "Databases", "NoSQL Databases"),
    "cloudwatch": ("Amazon CloudWatch", "Management and Governance", "Observability"),
    "opensearch": ("Amazon OpenSearch Service", "Analytics", "Search"),
    "vpc": ("Amazon Virtual Private Cloud", "Networking", "Network Connectivity"),
    "sp": ("Savings Plans for AWS Compute usage", "Compute", "Other (Compute)"),
    "vm": ("Virtual Machines", "Compute", "Virtual Machines"),
    "disks": ("Azure Managed Disks", "Storage", "Block Storage"),
    "blob": ("Azure Blob Storage", "Storage", "Object Storage"),
    "sqldb": ("Azure SQL Database", "Databases", "Relational Databases"),
    "aks": ("Azure Kubernetes Service", "Compute", "Containers"),
    "cosmos": ("Azure Cosmos DB", "Databases", "NoSQL Databases"),
    "monitor": ("Azure Monitor", "Management and Governance", "Observability"),
    "openai": ("Azure OpenAI Service", "AI and Machine Learning", "Generative AI"),
    "gce": ("Compute Engine", "Compute", "Virtual Machines"),
    "gcs": ("Cloud Storage", "Storage", "Object Storage"),
    "bq": ("BigQuery", "Databases", "Data Warehouses"),
    "run": ("Cloud Run", "Compute", "Serverless Compute"),
    "gke": ("Kubernetes Engine", "Compute", "Containers"),
    "cloudsql": ("Cloud SQL", "Databases", "Relational Databases"),
    "pubsub": ("Cloud Pub/Sub", "Integration", "Messaging"),
    "vertex": ("Vertex AI", "AI and Machine Learning", "Machine Learning"),
    "tax": ("Tax", "Other", "Other (Other)"),
}
# meter -> (service, SkuMeter, PricingUnit, list price in USD, ChargeDescription). The unit decides the daily
# quantity: "...Hours" = running hours x size, "...Months" = stored size / days in the month, others = volume.
# "1000 Requests" is consumed as Requests (ConsumedQuantity = 1000 x PricingQuantity).
METERS = {
    "aws.m6i": ("ec2", "Compute Instance", "Hours", "0.192", "On Demand Linux m6i.xlarge Instance Hour"),
    "aws.c6i": ("ec2", "Compute Instance", "Hours", "0.34", "On Demand Linux c6i.2xlarge Instance Hour"),
    "aws.c6i.spot": ("ec2", "Compute Instance (Spot)", "Hours", "0.34", "Spot Linux c6i.2xlarge Instance Hour"),
    "aws.gp3": ("ebs", "Storage", "GB-Months", "0.08", "General Purpose (gp3) SSD storage"),
    "aws.s3": ("s3", "Storage", "GB-Months", "0.023", "S3 Standard storage"),
    "aws.s3.req": ("s3", "API Request", "1000 Requests", "0.005", "PUT, COPY, POST or LIST requests"),
    "aws.rds": ("rds", "Database Instance", "Hours", "0.48", "RDS db.r6g.xlarge Single-AZ PostgreSQL instance hour"),
    "aws.rds.gp3": ("rds", "Database Storage", "GB-Months", "0.115", "RDS gp3 storage"),
    "aws.lambda.req": ("lambda", "Requests", "1000000 Requests", "0.2", "Lambda requests"),
    "aws.lambda.gb": ("lambda", "Duration", "GB-Hours", "0.06", "Lambda provisioned concurrency duration"),
    "aws.eks": ("eks", "Cluster", "Hours", "0.1", "EKS cluster hour"),
    "aws.cf.gb": ("cloudfront", "Data Transfer", "GB", "0.085", "Data transfer out to the internet, United States"),
    "aws.cf.req": ("cloudfront", "Requests", "10000 Requests", "0.0075", "HTTPS requests"),
    "aws.ddb.w": ("dynamodb", "Write Request Units", "1000000 Requests", "1.25", "On-demand write request units"),
    "aws.ddb.r": ("dynamodb", "Read Request Units", "1000000 Requests", "0.25", "On-demand read request units"),
    "aws.ddb.gb": ("dynamodb", "Storage", "GB-Months", "0.25", "DynamoDB table storage"),
    "aws.cw.in": ("cloudwatch", "Log Ingestion", "GB", "0.5", "CloudWatch Logs data ingested"),
    "aws.cw.gb": ("cloudwatch", "Log Storage", "GB-Months", "0.03", "CloudWatch Logs archived storage"),
    "aws.os": ("opensearch", "Compute", "Hours", "0.167", "OpenSearch r6g.large.search instance hour"),
    "aws.os.gb": ("opensearch", "Storage", "GB-Months", "0.122", "OpenSearch gp3 storage"),
    "aws.nat": ("vpc", "NAT Gateway", "Hours", "0.045", "NAT gateway hour"),
    "aws.nat.gb": ("vpc", "Data Processing", "GB", "0.045", "NAT gateway data processed"),
    "az.d4s": ("vm", "Compute", "Hours", "0.192", "D4s v5 Linux virtual machine hour"),
    "az.e8s": ("vm", "Compute", "Hours", "0.504", "E8s v5 Linux virtual machine hour"),
    "az.d4s.spot": ("vm", "Compute (Spot)", "Hours", "0.192", "D4s v5 Spot Linux virtual machine hour"),
    "az.disk": ("disks", "Storage", "GB-Months", "0.15", "Premium SSD v2 managed disk capacity"),
    "az.blob": ("blob", "Storage", "GB-Months", "0.0184", "Hot LRS data stored"),
    "az.blob.ops": ("blob", "API Request", "10000 Requests", "0.05", "Hot LRS write operations"),
    "az.sql": ("sqldb", "Compute", "Hours", "0.2522", "General Purpose Gen5 vCore hour"),
    "az.aks": ("aks", "Cluster", "Hours", "0.1", "AKS Standard tier cluster hour"),
    "az.cosmos": ("cosmos", "Throughput", "RU-Hours", "0.00008", "Provisioned throughput (RU/s), single region"),
    "az.logs": ("monitor", "Log Ingestion", "GB", "2.3", "Log Analytics analytics logs ingested"),
    "az.oai.in": ("openai", "Tokens", "1000 Tokens", "0.0025", "GPT-4o global deployment input tokens"),
    "az.oai.out": ("openai", "Tokens", "1000 Tokens", "0.01", "GPT-4o global deployment output tokens"),
    "gcp.n2.core": ("gce", "Compute", "Hours", "0.031611", "N2 Instance Core running in Americas"),
    "gcp.n2.ram": ("gce", "Memory", "GiB-Hours", "0.004237", "N2 Instance Ram running in Americas"),
    "gcp.n2.spot": ("gce", "Compute (Spot)", "Hours", "0.031611", "Spot Preemptible N2 Instance Core in Americas"),
    "gcp.pd": ("gce", "Storage", "GiB-Months", "0.17", "SSD backed PD Capacity"),
    "gcp.gcs": ("gcs", "Storage", "GiB-Months", "0.02", "Standard Storage US Multi-region"),
    "gcp.gcs.ops": ("gcs", "API Request", "10000 Requests", "0.05", "Multi-Region Standard Class A Operations"),
    "gcp.bq": ("bq", "Query", "TiB", "6.25", "Analysis (on-demand)"),
    "gcp.bq.gb": ("bq", "Storage", "GiB-Months", "0.02", "Active Logical Storage"),
    "gcp.run": ("run", "Compute", "vCPU-Seconds", "0.000024", "CPU Allocation Time"),
    "gcp.run.req": ("run", "Requests", "1000000 Requests", "0.4", "Requests"),
    "gcp.gke": ("gke", "Cluster Management", "Hours", "0.1", "Regional Kubernetes Clusters"),
    "gcp.sql": ("cloudsql", "Compute", "Hours", "0.0413", "Cloud SQL for PostgreSQL: Zonal - vCPU"),
    "gcp.sql.ram": ("cloudsql", "Memory", "GiB-Hours", "0.007", "Cloud SQL for PostgreSQL: Zonal - RAM"),
    "gcp.pubsub": ("pubsub", "Throughput", "TiB", "40", "Message Delivery Basic"),
    "gcp.vertex": ("vertex", "Prediction", "Hours", "0.2193", "Online prediction n1-standard-4 node hour"),
}
INSTANCE_TYPES = {"aws.m6i": "m6i.xlarge", "aws.c6i": "c6i.2xlarge", "aws.rds": "db.r6g.xlarge",
                  "aws.os": "r6g.large.search", "az.d4s": "Standard_D4s_v5", "az.e8s": "Standard_E8s_v5",
                  "gcp.n2.core": "n2-standard-8", "gcp.n2.ram": "n2-standard-8", "gcp.vertex": "n1-standard-4"}
_ARM = "arn:aws:{svc}:{region}:{sub}:"
_AZ = "/subscriptions/{sub}/resourceGroups/rg-{app}-{env}/providers/Microsoft."
_GCP = "//{svc}.googleapis.com/projects/{sub}/"
# kind -> (((meter, size per unit of scale), ...), ResourceType, ResourceId template, zonal)
KINDS = {
    "ec2-m6i": ((("aws.m6i", 1),), "Virtual Machine", _ARM + "instance/i-{hex}", True),
    "ec2-c6i": ((("aws.c6i", 1),), "Virtual Machine", _ARM + "instance/i-{hex}", True),
    "ec2-spot": ((("aws.c6i.spot", 1),), "Virtual Machine", _ARM + "instance/i-{hex}", True),
    "ebs": ((("aws.gp3", 500),), "Volume", _ARM + "volume/vol-{hex}", True),
    "s3": ((("aws.s3", 4000), ("aws.s3.req", 180)), "Bucket", "arn:aws:s3:::acme-{name}", False),
    "rds": ((("aws.rds", 1), ("aws.rds.gp3", 400)), "DB Instance", _ARM + "db:{name}", True),
    "lambda": ((("aws.lambda.req", 3), ("aws.lambda.gb", 4)), "Function", _ARM + "function:{name}", False),
    "eks": ((("aws.eks", 1),), "Kubernetes Cluster", _ARM + "cluster/{name}", False),
    "cloudfront": ((("aws.cf.gb", 900), ("aws.cf.req", 700)), "Distribution",
                   "arn:aws:cloudfront::{sub}:distribution/E{HEX}", False),
    "dynamodb": ((("aws.ddb.w", 6), ("aws.ddb.r", 30), ("aws.ddb.gb", 120)), "Table", _ARM + "table/{name}", False),
    "cloudwatch": ((("aws.cw.in", 25), ("aws.cw.gb", 900)), "Log Group", _ARM + "log-group:/acme/{name}", False),
    "opensearch": ((("aws.os", 1), ("aws.os.gb", 600)), "Search Domain", _ARM + "domain/{name}", False),
    "nat": ((("aws.nat", 1), ("aws.nat.gb", 300)), "NAT Gateway", _ARM + "natgateway/nat-{hex}", True),
    "vm-d4s": ((("az.d4s", 1),), "Virtual Machine", _AZ + "Compute/virtualMachines/vm-{name}", False),
    "vm-e8s": ((("az.e8s", 1),), "Virtual Machine", _AZ + "Compute/virtualMachines/vm-{name}", False),
    "vm-spot": ((("az.d4s.spot", 1),), "Virtual Machine", _AZ + "Compute/virtualMachines/vm-{name}", False),
    "disk": ((("az.disk", 256),), "Disk", _AZ + "Compute/disks/disk-{name}", False),
    "blob": ((("az.blob", 3000), ("az.blob.ops", 40)), "Storage Account",
             _AZ + "Storage/storageAccounts/st{short}", False),
    "sqldb": ((("az.sql", 4),), "SQL Database", _AZ + "Sql/servers/sql-{name}/databases/{app}", False),
    "aks": ((("az.aks", 1),), "Kubernetes Cluster", _AZ + "ContainerService/managedClusters/aks-{name}", False),
    "cosmos": ((("az.cosmos", 4000),), "Cosmos DB Account", _AZ + "DocumentDB/databaseAccounts/cosmos-{name}", False),
    "logs": ((("az.logs", 12),), "Log Analytics Workspace",
             _AZ + "OperationalInsights/workspaces/log-{name}", False),
    "openai": ((("az.oai.in", 9000), ("az.oai.out", 1500)), "Cognitive Services Account",
               _AZ + "CognitiveServices/accounts/oai-{name}", False),
    "gce": ((("gcp.n2.core", 8), ("gcp.n2.ram", 32)), "Compute Instance", _GCP + "zones/{zone}/instances/{name}", True),
    "gce-spot": ((("gcp.n2.spot", 8),), "Compute Instance", _GCP + "zones/{zone}/instances/{name}", True),
    "pd": ((("gcp.pd", 500),), "Disk", _GCP + "zones/{zone}/disks/{name}", True),
    "gcs": ((("gcp.gcs", 8000), ("gcp.gcs.ops", 30)), "Bucket",
            "//storage.googleapis.com/projects/_/buckets/{sub}-{name}", False),
    "bq": ((("gcp.bq", 2), ("gcp.bq.gb", 20000)), "Dataset", _GCP + "datasets/{under}", False),
    "run": ((("gcp.run", 400000), ("gcp.run.req", 4)), "Service", _GCP + "locations/{region}/services/{name}", False),
    "gke": ((("gcp.gke", 1),), "Kubernetes Cluster", _GCP + "locations/{region}/clusters/{name}", False),
    "cloudsql": ((("gcp.sql", 4), ("gcp.sql.ram", 16)), "Database Instance", _GCP + "instances/{name}", True),
    "pubsub": ((("gcp.pubsub", "0.3"),), "Topic", _GCP + "topics/{name}", False),
    "vertex": ((("gcp.vertex", 1),), "Endpoint", _GCP + "locations/{region}/endpoints/{name}", False),
}
_SVC = {"ec2-m6i": "ec2", "ec2-c6i": "ec2", "ec2-spot": "ec2", "ebs": "ec2", "nat": "ec2", "lambda": "lambda",
        "eks": "eks", "dynamodb": "dynamodb", "cloudwatch": "logs", "opensearch": "es", "rds": "rds",
        "gce": "compute", "gce-spot": "compute", "pd": "compute", "bq": "bigquery", "run": "run", "gke": "container",
        "cloudsql": "cloudsql", "pubsub": "pubsub", "vertex": "aiplatform"}
REGIONS = {"us-east-1": "US East (N. Virginia)", "us-west-2": "US West (Oregon)", "eu-west-1": "Europe (Ireland)",
           "eastus": "East US", "westus2": "West US 2", "germanywestcentral": "Germany West Central",
           "us-central1": "Iowa", "europe-west1": "Belgium"}


@dataclass
class Account:
    id: str
    name: str
    type: str
    currency: str
    tax_rate: D
    discounts: dict[str, D]  # service alias (or "*") -> negotiated discount off the list price
    subs: tuple[tuple[str, str], ...]  # (SubAccountId, SubAccountName)
    sub_type: str


@dataclass
class Commitment:
    id: str
    name: str
    category: str  # Spend | Usage
    type: str
    service: str  # alias of the service that bills the fee
    sku: str
    sub: int  # sub account (of the provider's first billing account) that bought it
    region: str | None
    meters: tuple[str, ...]  # eligible usage meters
    capacity: D  # per day: hours (Usage) or USD (Spend)
    rate: D  # Usage: amortized price per hour; Spend: 1
    billing: str  # daily | monthly | upfront
    sp_rates: dict[str, D] = field(default_factory=dict)  # Spend: committed price per eligible meter
    shared: bool = True  # applies to every sub account of the billing account, else only to its own


@dataclass
class Provider:
    name: str
    # cur2 (a CUR 2.0 Data Export, app.demo.cur) | focuscost (an Azure FocusCost export) | gcpexport (Cloud Billing
    # export rows, app.demo.gcp)
    fmt: str
    accounts: list[Account]
    # (account, sub account, team, app, env, region, "kind*count[xscale][@auto|@batch] ...")
    workloads: list[tuple]
    commitments: list[Commitment] = field(default_factory=list)
    credits: list[tuple] = field(default_factory=list)  # (account, sub, service, description, amount, months)
    refund: tuple | None = None  # (kind, meter, day, quantity, description): a negative Usage row


def _stable_id(label: str, guid: bool = False) -> str:
    """Account and commitment IDs: fixed by a label, whatever the data seed."""
    rng = random.Random(label)
    return str(uuid.UUID(int=rng.getrandbits(128), version=4)) if guid else str(rng.randint(10**11, 10**12 - 1))


def providers() -> dict[str, Provider]:
    aws_subs = tuple((_stable_id(f"aws-{n}"), n) for n in ("payments-prod", "data-prod", "platform-shared",
                                                            "search-prod", "mobile-prod", "sandbox"))
    aws = Provider("AWS", "cur2", [Account(_stable_id("aws-payer"), "Acme Corp", "Management Account", "USD", D("0.06"),
                                          {"cloudfront": D("0.12"), "s3": D("0.04")}, aws_subs, "Member Account")], [
        (0, 0, "payments", "checkout-api", "prod", "us-east-1", "ec2-m6i*8 ec2-m6i*6@auto ebs*8"),
        (0, 0, "payments", "ledger", "prod", "us-east-1", "rds*2 dynamodb*1x2"),
        (0, 0, "payments", "receipts", "prod", "us-east-1", "s3*1"),
        (0, 1, "data", "etl", "prod", "us-east-1", "ec2-spot*6@batch s3*3x3 lambda*3"),
        (0, 1, "data", "reporting", "prod", "us-east-1", "rds*1"),
        (0, 2, "platform", "k8s", "prod", "us-east-1", "eks*2 ec2-c6i*4 ebs*6"),
        (0, 2, "platform", "network", "prod", "us-east-1", "nat*3"),
        (0, 2, "platform", "observability", "prod", "us-east-1", "cloudwatch*4"),
        (0, 3, "search", "search-api", "prod", "us-west-2", "opensearch*3"),
        (0, 3, "search", "indexer", "prod", "us-west-2", "ec2-c6i*3@auto ebs*3x2"),
        (0, 4, "mobile", "mobile-api", "prod", "us-east-1", "lambda*5x2 dynamodb*3"),
        (0, 4, "mobile", "app-assets", "prod", "us-east-1", "cloudfront*2 s3*2"),
        (0, 5, None, "experiments", "dev", "eu-west-1", "ec2-m6i*2@batch ebs*2"),
    ], credits=[(0, 1, "ec2", "AWS Migration Acceleration Program credit", D("350.00"), (0, 1, 2))],
        refund=("cloudfront", "aws.cf.gb", date(2026, 10, 9), D(-1250),
                "Refund: duplicate data transfer charge of 2026-10-05"))
    aws.commitments = [
        Commitment(f"arn:aws:savingsplans::{aws_subs[2][0]}:savingsplan/{_stable_id('sp', True)}",
                   "Compute Savings Plan, 1 year, no upfront", "Spend", "Savings Plan", "sp", "ComputeSP:1yrNoUpfront",
                   2, None, ("aws.m6i", "aws.c6i"), D("58.80"), D(1), "daily",
                   {"aws.m6i": D("0.13824"), "aws.c6i": D("0.2448")}),
        Commitment(f"arn:aws:rds:us-east-1:{aws_subs[0][0]}:ri:ledger-db-ri-2026", "ledger-db-ri-2026", "Usage",
                   "Reserved Instance", "rds", "RDS:db.r6g.xlarge:1yrAllUpfront", 0, "us-east-1", ("aws.rds",),
                   D(48), D("0.3"), "upfront", shared=False),
    ]
    azure = Provider("Microsoft", "focuscost", [
        Account(_stable_id("azure-mca", True), "Acme Corp - US billing profile", "Billing Profile", "USD",
                D("0.0725"), {"*": D("0.08")}, tuple((_stable_id(f"azure-{n}", True), n)
                                                     for n in ("payments-prod", "data-prod", "platform-dev")),
                "Subscription"),
        Account(_stable_id("azure-ea")[:8], "Acme Europe GmbH - EA enrollment", "Enrollment", "EUR", D("0.19"),
                {"*": D("0.12")}, ((_stable_id("azure-search-eu", True), "search-eu-prod"),), "Subscription"),
    ], [
        (0, 0, "payments", "checkout-api", "prod", "eastus", "vm-d4s*6 vm-d4s*3@auto disk*9"),
        (0, 0, "payments", "fraud-scoring", "prod", "eastus", "openai*2"),
        (0, 0, "payments", "ledger", "prod", "eastus", "sqldb*2x2"),
        (0, 1, "data", "lakehouse", "prod", "eastus", "vm-e8s*3 vm-spot*4@batch blob*3x2 disk*3x2"),
        (0, 2, "platform", "k8s", "dev", "westus2", "aks*2"),
        (0, 2, "platform", "observability", "dev", "westus2", "logs*2"),
        (0, 2, None, "sandbox", "dev", "westus2", "vm-d4s*2@batch"),
        (1, 0, "search", "search-api", "prod", "germanywestcentral", "vm-e8s*2 cosmos*2 disk*2"),
        (1, 0, "search", "indexer", "prod", "germanywestcentral", "blob*1"),
        (1, 0, "mobile", "mobile-api", "prod", "germanywestcentral", "cosmos*1"),
    ], credits=[(0, 0, "sqldb", "Service level agreement credit: Azure SQL Database availability, 2026-09-14",
                 D("85.40"), (2,))])
    azure.commitments = [Commitment(
        f"/providers/Microsoft.Capacity/reservationOrders/{_stable_id('ro', True)}/reservations/"
        f"{_stable_id('r', True)}", "VM_RI_D4s_v5_eastus_1y", "Usage", "Reservation", "vm",
        "DZH318Z0BQ4L/reservation-1y", 0, "eastus", ("az.d4s",), D(168), D("0.1211"), "monthly")]
    gcp = Provider("Google Cloud", "gcpexport", [Account(
        "01A7C4-9E3B52-D8F061", "Acme Corp GCP", "Billing Account", "USD", D("0.05"),
        {"bq": D("0.1"), "gcs": D("0.05")}, (("acme-data-prod", "Data Platform (prod)"),
                                             ("acme-ml-prod", "ML Platform (prod)"),
                                             ("acme-mobile-prod", "Mobile Backend (prod)"),
                                             ("acme-search-dev", "Search (dev)")), "Project")], [
        (0, 0, "data", "warehouse", "prod", "us-central1", "bq*4"),
        (0, 0, "data", "etl", "prod", "us-central1", "gce*6 gce-spot*6@batch pd*6"),
        (0, 0, "data", "lake", "prod", "us-central1", "gcs*4x2"),
        (0, 0, "data", "events", "prod", "us-central1", "pubsub*3"),
        (0, 1, "data", "ml-features", "prod", "us-central1", "vertex*2 gce*4x2@auto pd*4"),
        (0, 2, "mobile", "mobile-api", "prod", "us-central1", "run*6 cloudsql*2"),
        (0, 2, "mobile", "push-gateway", "prod", "us-central1", "gke*1"),
        (0, 2, "platform", "k8s", "prod", "us-central1", "gce*2"),
        (0, 3, "search", "ranking", "dev", "europe-west1", "cloudsql*1 gke*1 pd*2"),
        (0, 3, None, "scratch", "dev", "europe-west1", "gcs*2"),
    ], [Commitment("//compute.googleapis.com/projects/acme-data-prod/regions/us-central1/commitments/n2-cores-1y",
                   "n2-cores-1y", "Usage", "Committed Use Discount", "gce", "CUD:N2-Core:1y", 0, "us-central1",
                   ("gcp.n2.core",), D(1728), D("0.019915"), "daily")],
        [(0, 0, "bq", "Promotional credit: BigQuery editions trial", D("200.00"), (0, 1, 2))])
    return {"demo-aws": aws, "demo-azure": azure, "demo-gcp": gcp}
