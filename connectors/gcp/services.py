"""GCP service names (`service.description` of the billing export) -> FOCUS ServiceCategory, ServiceSubcategory.

The export names services by display name ("Compute Engine", "BigQuery"); ServiceName keeps that name. Pairs are
FOCUS 1.2 category/subcategory pairs (tests check them against app.focus.SERVICE_SUBCATEGORIES). A service missing
here is filed under Other / Other (Other) and the delivery's ledger row lists it.
"""
from __future__ import annotations

OTHER = ("Other", "Other (Other)")

# service.description: (ServiceCategory, ServiceSubcategory)
GCP_SERVICES: dict[str, tuple[str, str]] = {
    # Compute
    "Compute Engine": ("Compute", "Virtual Machines"),
    "Kubernetes Engine": ("Compute", "Containers"),
    "Cloud Run": ("Compute", "Serverless Compute"),
    "Cloud Run Functions": ("Compute", "Serverless Compute"),
    "Cloud Functions": ("Compute", "Serverless Compute"),
    "App Engine": ("Web", "Application Platforms"),
    "Batch": ("Compute", "Other (Compute)"),
    "VMware Engine": ("Compute", "Virtual Machines"),
    "Artifact Registry": ("Developer Tools", "Source Code Management"),
    "Container Registry Vulnerability Scanning": ("Security", "Security Posture Management"),
    "Red Hat® OpenShift® Container Platform": ("Compute", "Containers"),
    "Anthos": ("Multicloud", "Multicloud Integration"),
    "GKE Enterprise": ("Multicloud", "Multicloud Integration"),
    # Storage
    "Cloud Storage": ("Storage", "Object Storage"),
    "Filestore": ("Storage", "File Storage"),
    "Backup and DR Service": ("Storage", "Backup Storage"),
    "Persistent Disk": ("Storage", "Block Storage"),
    # Databases
    "Cloud SQL": ("Databases", "Relational Databases"),
    "Cloud Spanner": ("Databases", "Relational Databases"),
    "Spanner": ("Databases", "Relational Databases"),
    "AlloyDB": ("Databases", "Relational Databases"),
    "Cloud Bigtable": ("Databases", "NoSQL Databases"),
    "Bigtable": ("Databases", "NoSQL Databases"),
    "Cloud Firestore": ("Databases", "NoSQL Databases"),
    "Firestore": ("Databases", "NoSQL Databases"),
    "Cloud Datastore": ("Databases", "NoSQL Databases"),
    "MongoDB": ("Databases", "NoSQL Databases"),
    "Firebase": ("Developer Tools", "Developer Platforms"),
    "Cloud Memorystore for Redis": ("Databases", "Caching"),
    "Memorystore": ("Databases", "Caching"),
    "BigQuery": ("Analytics", "Analytics Platforms"),
    "BigQuery Reservation API": ("Analytics", "Analytics Platforms"),
    "BigQuery Storage API": ("Analytics", "Analytics Platforms"),
    "BigQuery BI Engine": ("Analytics", "Business Intelligence"),
    # Analytics, integration
    "Cloud Dataflow": ("Analytics", "Data Processing"),
    "Dataflow": ("Analytics", "Data Processing"),
    "Cloud Dataproc": ("Analytics", "Data Processing"),
    "Dataproc": ("Analytics", "Data Processing"),
    "Cloud Composer": ("Integration", "Workflow Orchestration"),
    "Cloud Pub/Sub": ("Integration", "Messaging"),
    "Pub/Sub": ("Integration", "Messaging"),
    "Cloud Tasks": ("Integration", "Messaging"),
    "Cloud Scheduler": ("Integration", "Workflow Orchestration"),
    "Workflows": ("Integration", "Workflow Orchestration"),
    "Apigee": ("Integration", "API Management"),
    "API Gateway": ("Integration", "API Management"),
    "Looker Studio": ("Analytics", "Business Intelligence"),
    "Looker": ("Analytics", "Business Intelligence"),
    # AI
    "Vertex AI": ("AI and Machine Learning", "AI Platforms"),
    "Gemini API": ("AI and Machine Learning", "Generative AI"),
    "Cloud Natural Language API": ("AI and Machine Learning", "Natural Language Processing"),
    "Cloud Translation API": ("AI and Machine Learning", "Natural Language Processing"),
    "Cloud Speech API": ("AI and Machine Learning", "Machine Learning"),
    "Cloud Vision API": ("AI and Machine Learning", "Machine Learning"),
    "Dialogflow": ("AI and Machine Learning", "Bots"),
    # Networking
    "Networking": ("Networking", "Network Infrastructure"),
    "Cloud DNS": ("Networking", "Network Routing"),
    "Cloud CDN": ("Networking", "Content Delivery"),
    "CDN": ("Networking", "Content Delivery"),
    "Cloud Load Balancing": ("Networking", "Application Networking"),
    "Cloud NAT": ("Networking", "Network Connectivity"),
    "Cloud VPN": ("Networking", "Network Connectivity"),
    "Cloud Interconnect": ("Networking", "Network Connectivity"),
    "Cloud Armor": ("Networking", "Network Security"),
    "VPC": ("Networking", "Network Infrastructure"),
    "IP": ("Networking", "Network Infrastructure"),
    "Route": ("Networking", "Network Routing"),
    "Firewall": ("Networking", "Network Security"),
    "Traffic Director": ("Networking", "Application Networking"),
    "Service Discovery": ("Networking", "Application Networking"),
    "Cloud Domains": ("Networking", "Network Routing"),
    "Network Intelligence Center": ("Networking", "Other (Networking)"),
    "Network": ("Networking", "Network Infrastructure"),
    "NAT": ("Networking", "Network Connectivity"),
    "Private Service Connect": ("Networking", "Network Connectivity"),
    # Management, security, support
    "Cloud Logging": ("Management and Governance", "Observability"),
    "Cloud Monitoring": ("Management and Governance", "Observability"),
    "Stackdriver Logging": ("Management and Governance", "Observability"),
    "Stackdriver Monitoring": ("Management and Governance", "Observability"),
    "Cloud Trace": ("Management and Governance", "Observability"),
    "Support": ("Management and Governance", "Support"),
    "Cloud Build": ("Developer Tools", "Continuous Integration and Deployment"),
    "Cloud Deploy": ("Developer Tools", "Continuous Integration and Deployment"),
    "Cloud Source Repositories": ("Developer Tools", "Source Code Management"),
    "Cloud Workstations": ("Developer Tools", "Development Environments"),
    "Secret Manager": ("Security", "Secret Management"),
    "Cloud Key Management Service (KMS)": ("Security", "Secret Management"),
    "Security Command Center": ("Security", "Security Posture Management"),
    "Identity Platform": ("Identity", "Identity and Access Management"),
    "Identity-Aware Proxy": ("Identity", "Identity and Access Management"),
    "Google Workspace": ("Business Applications", "Productivity and Collaboration"),
    "Invoice": ("Other", "Other (Other)"),
}


def values_sql() -> str:
    """The table as a SQL VALUES list (description, category, subcategory), for a join in the mapping."""
    def q(s: str) -> str:
        return "'" + s.replace("'", "''") + "'"

    return ", ".join(f"({q(name)}, {q(c)}, {q(s)})" for name, (c, s) in GCP_SERVICES.items())
