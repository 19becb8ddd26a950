"""Provider connectors. `get_connector(provider)` returns the one that reads that provider's exports."""
from __future__ import annotations

from connectors.base import Connector, IngestError


def get_connector(provider: str) -> Connector:
    if provider == "focus":
        from connectors.focus import FocusConnector

        return FocusConnector()
    if provider == "aws":
        from connectors.aws import AwsConnector

        return AwsConnector()
    if provider == "azure":
        from connectors.azure import AzureConnector

        return AzureConnector()
    if provider == "gcp":
        from connectors.gcp import GcpConnector

        return GcpConnector()
    raise IngestError(f"no connector for provider {provider!r} (available: {', '.join(PROVIDERS)})")


PROVIDERS = ("focus", "aws", "azure", "gcp")
