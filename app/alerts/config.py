"""Settings of the alerts module (environment, prefix CLOUDTALLY_ALERTS_)."""
from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class AlertSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLOUDTALLY_ALERTS_", env_file=".env", extra="ignore")

    allow_hosts: str = Field(
        "", description="Comma-separated host names, IP addresses or CIDR networks that webhook targets may use "
        "although they are not public (private, loopback, unique-local) and that may be reached over plain http "
        "(e.g. `127.0.0.1` for tests, `10.1.0.0/16,hooks.internal`). Cloud metadata addresses "
        "(169.254.169.254, fd00:ec2::254) and other link-local addresses are refused even when listed.")
    timeout: float = Field(10.0, gt=0, description="Seconds for one webhook request (connect + answer).")
    max_attempts: int = Field(
        8, ge=1, description="Attempts per delivery (the first + retries on 429, 5xx, network errors); after the "
        "last the delivery and its event are marked failed.")
    retry_base_delay: float = Field(
        15.0, ge=0, description="Retry n waits a random time in [base * 2**(n-1) / 2, base * 2**(n-1)] "
        "(exponential backoff with jitter), at least the receiver's Retry-After, at most retry_max_delay.")
    retry_max_delay: float = Field(3600.0, ge=0, description="Upper bound of one retry wait, in seconds.")
    deliver_seconds: float = Field(15.0, gt=0, description="How often `serve`'s scheduler delivers due alerts.")
    evaluate_seconds: float = Field(
        3600.0, gt=0, description="How often `serve`'s scheduler evaluates triggers (anomalies, budgets, digests) "
        "besides after every ingest.")
    lease_seconds: float = Field(120.0, gt=0, description="A delivery claimed by a worker that died is retried "
                                 "after this many seconds.")


def alert_settings(rt) -> AlertSettings:
    """The runtime's alert settings (tests set rt.alert_settings), else from the environment."""
    found = getattr(rt, "alert_settings", None)
    if found is None:
        found = AlertSettings()
        try:
            rt.alert_settings = found
        except AttributeError:  # pragma: no cover - a frozen runtime
            pass
    return found
