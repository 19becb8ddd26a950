"""Metrics connectors for rightsizing: CPU (and memory and network where the cloud has them) of the VMs the bill
shows, per cloud. Each connector is `fetch(vms, start, end, options) -> {ResourceId: Metrics}` and talks to the
cloud's own API through its SDK or REST endpoint; the endpoint can be pointed elsewhere (moto for CloudWatch in the
tests and the demo, a local HTTP server for Azure Monitor and Cloud Monitoring in the tests).

- `optimizers.metrics.aws`: CloudWatch GetMetricData (boto3): CPUUtilization Maximum per 5 minutes, NetworkOut Sum
  per day, and the CloudWatch agent's mem_used_percent (CWAgent namespace) when it is there.
- `optimizers.metrics.azure`: Azure Monitor metrics (azure-mgmt-monitor): "Percentage CPU" Maximum and "Available
  Memory Bytes" Minimum per 5 minutes, "Network Out Total" Total per day.
- `optimizers.metrics.gcp`: Cloud Monitoring timeSeries.list (google-cloud-monitoring, REST):
  compute.googleapis.com/instance/cpu/utilization (ALIGN_MAX per 5 minutes, a 0..1 ratio, reported in %),
  instance/network/sent_bytes_count (ALIGN_SUM per day), and the Ops Agent's agent.googleapis.com/memory/percent_used
  (state "used", ALIGN_MAX per 5 minutes) where the agent runs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class VM:
    """A VM as the bill shows it."""

    resource_id: str
    provider: str
    region: str | None
    instance_type: str | None
    sub_account_id: str | None = None


@dataclass
class Metrics:
    cpu: list[float] = field(default_factory=list)  # % of the VM's vCPUs, one value per interval (its maximum)
    memory: list[float] = field(default_factory=list)  # % of its memory in use, where measured
    network_out_bytes_per_day: list[float] = field(default_factory=list)
    source: str = ""


def instance_id(resource_id: str) -> str:
    """An EC2 instance id from an ARN (arn:aws:ec2:region:acct:instance/i-...) or a bare id."""
    return resource_id.rsplit("/", 1)[-1]


def window(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    return start, end
