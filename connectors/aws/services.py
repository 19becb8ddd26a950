"""AWS product codes (`line_item_product_code`) -> FOCUS ServiceName, ServiceCategory, ServiceSubcategory.

Names are AWS's public product names, so CUR 2.0, legacy CUR and FOCUS exports of the same account group under
the same ServiceName. Categories and subcategories are FOCUS 1.2 pairs (tests check them against
app.focus.SERVICE_SUBCATEGORIES). A code missing here keeps the product name the file gives (or the code) under
Other / Other (Other), and the delivery's ledger row lists it.
"""
from __future__ import annotations

# code: (ServiceName, ServiceCategory, ServiceSubcategory)
AWS_SERVICES: dict[str, tuple[str, str, str]] = {
    # Compute
    "AmazonEC2": ("Amazon Elastic Compute Cloud", "Compute", "Virtual Machines"),
    "AWSLambda": ("AWS Lambda", "Compute", "Serverless Compute"),
    "AmazonECS": ("Amazon Elastic Container Service", "Compute", "Containers"),
    "AmazonEKS": ("Amazon Elastic Kubernetes Service", "Compute", "Containers"),
    "AmazonECR": ("Amazon Elastic Container Registry", "Compute", "Containers"),
    "AWSAppRunner": ("AWS App Runner", "Compute", "Containers"),
    "AmazonLightsail": ("Amazon Lightsail", "Compute", "Virtual Machines"),
    "AWSBatch": ("AWS Batch", "Compute", "Other (Compute)"),
    "AmazonWorkSpaces": ("Amazon WorkSpaces", "Compute", "End User Computing"),
    "AmazonAppStream": ("Amazon AppStream 2.0", "Compute", "End User Computing"),
    "AmazonBraket": ("Amazon Braket", "Compute", "Quantum Compute"),
    "AWSOutposts": ("AWS Outposts", "Compute", "Other (Compute)"),
    # Savings Plans bill their fees under their own product codes (SavingsPlanRecurringFee / UpfrontFee lines).
    "ComputeSavingsPlans": ("Savings Plans for AWS Compute usage", "Compute", "Other (Compute)"),
    "MachineLearningSavingsPlans": ("Savings Plans for Machine Learning", "AI and Machine Learning",
                                    "Other (AI and Machine Learning)"),
    # Storage
    "AmazonS3": ("Amazon Simple Storage Service", "Storage", "Object Storage"),
    "AmazonS3GlacierDeepArchive": ("Amazon S3 Glacier Deep Archive", "Storage", "Backup Storage"),
    "AmazonGlacier": ("Amazon Glacier", "Storage", "Backup Storage"),
    "AmazonEFS": ("Amazon Elastic File System", "Storage", "File Storage"),
    "AmazonFSx": ("Amazon FSx", "Storage", "File Storage"),
    "AWSBackup": ("AWS Backup", "Storage", "Backup Storage"),
    "AWSStorageGateway": ("AWS Storage Gateway", "Storage", "Storage Platforms"),
    "AWSElasticDisasterRecovery": ("AWS Elastic Disaster Recovery", "Management and Governance", "Disaster Recovery"),
    # Databases
    "AmazonRDS": ("Amazon Relational Database Service", "Databases", "Relational Databases"),
    "AmazonDynamoDB": ("Amazon DynamoDB", "Databases", "NoSQL Databases"),
    "AmazonElastiCache": ("Amazon ElastiCache", "Databases", "Caching"),
    "AmazonMemoryDB": ("Amazon MemoryDB", "Databases", "Caching"),
    "AmazonRedshift": ("Amazon Redshift", "Databases", "Data Warehouses"),
    "AmazonDocDB": ("Amazon DocumentDB (with MongoDB compatibility)", "Databases", "NoSQL Databases"),
    "AmazonNeptune": ("Amazon Neptune", "Databases", "NoSQL Databases"),
    "AmazonTimestream": ("Amazon Timestream", "Databases", "Time Series Databases"),
    "AmazonQLDB": ("Amazon Quantum Ledger Database", "Databases", "Ledger Databases"),
    "AmazonMCS": ("Amazon Keyspaces (for Apache Cassandra)", "Databases", "NoSQL Databases"),
    "AmazonSimpleDB": ("Amazon SimpleDB", "Databases", "NoSQL Databases"),
    # Analytics
    "AmazonAthena": ("Amazon Athena", "Analytics", "Data Processing"),
    "AWSGlue": ("AWS Glue", "Analytics", "Data Processing"),
    "ElasticMapReduce": ("Amazon EMR", "Analytics", "Data Processing"),
    "AmazonKinesis": ("Amazon Kinesis", "Analytics", "Streaming Analytics"),
    "AmazonKinesisFirehose": ("Amazon Data Firehose", "Analytics", "Streaming Analytics"),
    "AmazonKinesisAnalytics": ("Amazon Managed Service for Apache Flink", "Analytics", "Streaming Analytics"),
    "AmazonMSK": ("Amazon Managed Streaming for Apache Kafka", "Analytics", "Streaming Analytics"),
    "AmazonES": ("Amazon OpenSearch Service", "Analytics", "Search"),
    "AmazonCloudSearch": ("Amazon CloudSearch", "Analytics", "Search"),
    "AmazonQuickSight": ("Amazon QuickSight", "Analytics", "Business Intelligence"),
    "AWSLakeFormation": ("AWS Lake Formation", "Analytics", "Analytics Platforms"),
    "AmazonDataZone": ("Amazon DataZone", "Management and Governance", "Data Governance"),
    # AI and ML
    "AmazonSageMaker": ("Amazon SageMaker", "AI and Machine Learning", "AI Platforms"),
    "AmazonBedrock": ("Amazon Bedrock", "AI and Machine Learning", "Generative AI"),
    "AmazonQ": ("Amazon Q", "AI and Machine Learning", "Generative AI"),
    "AmazonRekognition": ("Amazon Rekognition", "AI and Machine Learning", "Machine Learning"),
    "AmazonTextract": ("Amazon Textract", "AI and Machine Learning", "Machine Learning"),
    "comprehend": ("Amazon Comprehend", "AI and Machine Learning", "Natural Language Processing"),
    "translate": ("Amazon Translate", "AI and Machine Learning", "Natural Language Processing"),
    "transcribe": ("Amazon Transcribe", "AI and Machine Learning", "Natural Language Processing"),
    "AmazonPolly": ("Amazon Polly", "AI and Machine Learning", "Natural Language Processing"),
    "AmazonLex": ("Amazon Lex", "AI and Machine Learning", "Bots"),
    "AmazonKendra": ("Amazon Kendra", "Analytics", "Search"),
    "AmazonPersonalize": ("Amazon Personalize", "AI and Machine Learning", "Machine Learning"),
    "AmazonForecast": ("Amazon Forecast", "AI and Machine Learning", "Machine Learning"),
    # Networking
    "AmazonVPC": ("Amazon Virtual Private Cloud", "Networking", "Network Infrastructure"),
    "AWSELB": ("Elastic Load Balancing", "Networking", "Application Networking"),
    "AmazonCloudFront": ("Amazon CloudFront", "Networking", "Content Delivery"),
    "AmazonRoute53": ("Amazon Route 53", "Networking", "Network Routing"),
    "AWSDataTransfer": ("AWS Data Transfer", "Networking", "Network Connectivity"),
    "AWSDirectConnect": ("AWS Direct Connect", "Networking", "Network Connectivity"),
    "AWSGlobalAccelerator": ("AWS Global Accelerator", "Networking", "Application Networking"),
    "AmazonApiGateway": ("Amazon API Gateway", "Integration", "API Management"),
    "AWSTransitGateway": ("AWS Transit Gateway", "Networking", "Network Connectivity"),
    "AWSNetworkFirewall": ("AWS Network Firewall", "Networking", "Network Security"),
    "AmazonVPCLattice": ("Amazon VPC Lattice", "Networking", "Application Networking"),
    "AWSCloudMap": ("AWS Cloud Map", "Networking", "Application Networking"),
    "AmazonCloudWAN": ("AWS Cloud WAN", "Networking", "Network Connectivity"),
    # Integration
    "AWSQueueService": ("Amazon Simple Queue Service", "Integration", "Messaging"),
    "AmazonSNS": ("Amazon Simple Notification Service", "Integration", "Messaging"),
    "AmazonMQ": ("Amazon MQ", "Integration", "Messaging"),
    "AWSEvents": ("Amazon EventBridge", "Integration", "Messaging"),
    "AmazonStates": ("AWS Step Functions", "Integration", "Workflow Orchestration"),
    "AmazonMWAA": ("Amazon Managed Workflows for Apache Airflow", "Integration", "Workflow Orchestration"),
    "AWSAppSync": ("AWS AppSync", "Integration", "API Management"),
    "AmazonAppFlow": ("Amazon AppFlow", "Integration", "Other (Integration)"),
    "AmazonSES": ("Amazon Simple Email Service", "Business Applications", "Productivity and Collaboration"),
    "AmazonConnect": ("Amazon Connect", "Business Applications", "Other (Business Applications)"),
    "AmazonChime": ("Amazon Chime", "Business Applications", "Productivity and Collaboration"),
    "AmazonWorkMail": ("Amazon WorkMail", "Business Applications", "Productivity and Collaboration"),
    "AmazonPinpoint": ("Amazon Pinpoint", "Mobile", "Other (Mobile)"),
    "AWSAmplify": ("AWS Amplify", "Web", "Application Platforms"),
    "AWSElasticBeanstalk": ("AWS Elastic Beanstalk", "Web", "Application Platforms"),
    # Management and governance
    "AmazonCloudWatch": ("Amazon CloudWatch", "Management and Governance", "Observability"),
    "AWSXRay": ("AWS X-Ray", "Management and Governance", "Observability"),
    "AmazonGrafana": ("Amazon Managed Grafana", "Management and Governance", "Observability"),
    "AmazonPrometheus": ("Amazon Managed Service for Prometheus", "Management and Governance", "Observability"),
    "AWSCloudTrail": ("AWS CloudTrail", "Management and Governance", "Observability"),
    "AWSConfig": ("AWS Config", "Management and Governance", "Compliance"),
    "AWSSystemsManager": ("AWS Systems Manager", "Management and Governance", "Other (Management and Governance)"),
    "AWSCloudFormation": ("AWS CloudFormation", "Management and Governance", "Architecture"),
    "AWSServiceCatalog": ("AWS Service Catalog", "Management and Governance", "Other (Management and Governance)"),
    "AWSCostExplorer": ("AWS Cost Explorer", "Management and Governance", "Cost Management"),
    "AWSBudgets": ("AWS Budgets", "Management and Governance", "Cost Management"),
    "AWSSupportBusiness": ("AWS Support (Business)", "Management and Governance", "Support"),
    "AWSSupportEnterprise": ("AWS Support (Enterprise)", "Management and Governance", "Support"),
    "AWSDeveloperSupport": ("AWS Support (Developer)", "Management and Governance", "Support"),
    "AWSSupportEnterpriseOnRamp": ("AWS Support (Enterprise On-Ramp)", "Management and Governance", "Support"),
    "AWSControlTower": ("AWS Control Tower", "Management and Governance", "Compliance"),
    "AWSAuditManager": ("AWS Audit Manager", "Management and Governance", "Compliance"),
    # Security and identity
    "awskms": ("AWS Key Management Service", "Security", "Secret Management"),
    "AWSSecretsManager": ("AWS Secrets Manager", "Security", "Secret Management"),
    "AWSCertificateManager": ("AWS Certificate Manager", "Security", "Secret Management"),
    "AmazonGuardDuty": ("Amazon GuardDuty", "Security", "Threat Detection and Response"),
    "AmazonInspectorV2": ("Amazon Inspector", "Security", "Security Posture Management"),
    "AWSSecurityHub": ("AWS Security Hub", "Security", "Security Posture Management"),
    "AmazonDetective": ("Amazon Detective", "Security", "Threat Detection and Response"),
    "AmazonMacie": ("Amazon Macie", "Security", "Other (Security)"),
    "awswaf": ("AWS WAF", "Networking", "Network Security"),
    "AWSShield": ("AWS Shield", "Networking", "Network Security"),
    "AmazonCognito": ("Amazon Cognito", "Identity", "Identity and Access Management"),
    "AWSDirectoryService": ("AWS Directory Service", "Identity", "Identity and Access Management"),
    "AWSIAMIdentityCenter": ("AWS IAM Identity Center", "Identity", "Identity and Access Management"),
    # Developer tools
    "CodeBuild": ("AWS CodeBuild", "Developer Tools", "Continuous Integration and Deployment"),
    "AWSCodePipeline": ("AWS CodePipeline", "Developer Tools", "Continuous Integration and Deployment"),
    "AWSCodeDeploy": ("AWS CodeDeploy", "Developer Tools", "Continuous Integration and Deployment"),
    "AWSCodeCommit": ("AWS CodeCommit", "Developer Tools", "Source Code Management"),
    "AWSCodeArtifact": ("AWS CodeArtifact", "Developer Tools", "Other (Developer Tools)"),
    "AWSCloudShell": ("AWS CloudShell", "Developer Tools", "Development Environments"),
    "AWSDeviceFarm": ("AWS Device Farm", "Developer Tools", "Quality Assurance"),
    # Migration, media, IoT
    "AWSDatabaseMigrationSvc": ("AWS Database Migration Service", "Migration", "Data Migration"),
    "AWSDataSync": ("AWS DataSync", "Migration", "Data Migration"),
    "AWSTransfer": ("AWS Transfer Family", "Storage", "Other (Storage)"),
    "AWSSnowball": ("AWS Snowball", "Migration", "Data Migration"),
    "AWSApplicationMigrationSvc": ("AWS Application Migration Service", "Migration", "Resource Migration"),
    "AWSElementalMediaConvert": ("AWS Elemental MediaConvert", "Media", "Media Streaming"),
    "AWSElementalMediaLive": ("AWS Elemental MediaLive", "Media", "Media Streaming"),
    "AmazonIVS": ("Amazon Interactive Video Service", "Media", "Media Streaming"),
    "AmazonGameLift": ("Amazon GameLift", "Media", "Gaming"),
    "AWSIoT": ("AWS IoT Core", "Internet of Things", "IoT Platforms"),
    "AWSIoTAnalytics": ("AWS IoT Analytics", "Internet of Things", "IoT Analytics"),
    "AWSGreengrass": ("AWS IoT Greengrass", "Internet of Things", "IoT Platforms"),
}

OTHER = ("Other", "Other (Other)")


def values_sql() -> str:
    """The table as a SQL VALUES list (code, name, category, subcategory), for a join in the mapping."""
    def q(s: str) -> str:
        return "'" + s.replace("'", "''") + "'"

    return ", ".join(f"({q(code)}, {q(n)}, {q(c)}, {q(s)})" for code, (n, c, s) in AWS_SERVICES.items())
