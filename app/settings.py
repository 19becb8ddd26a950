"""Runtime settings, read from the environment (prefix CLOUDTALLY_) or a .env file."""
from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLOUDTALLY_", env_file=".env", extra="ignore")

    data_dir: Path = Field(
        Path("cloudtally-data"),
        description="Folder for the DuckDB warehouse, the SQLite control database and downloaded raw files.",
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the control database. Default: SQLite file in the data dir. "
        "Production: postgresql+psycopg://user@host/db.",
    )
    warehouse_path: Path | None = Field(None, description="DuckDB file. Default: <data_dir>/warehouse.duckdb.")
    log_level: str = Field("INFO", description="Python logging level.")
    warehouse_memory_limit: str | None = Field(
        "1500MB",
        description="DuckDB memory_limit for warehouse work (e.g. 1GB, 4GB); DuckDB spills to disk beyond it. "
        "1500MB keeps a 10M-line ingest under 2 GB of RSS; AWS CUR rows (about 50 columns) need more than 1GB "
        "with two threads (bench/RESULTS.md).",
    )
    download_concurrency: int = Field(4, description="Raw files fetched at once from object storage.")
    warehouse_lock_timeout: float = Field(
        30.0, description="Seconds to wait for another process to release the DuckDB file before giving up."
    )

    ingest_retries: int = Field(
        3, ge=0, description="Retries of an ingest run after a transient error (network, throttling, 5xx); "
        "0 = one attempt only. Permanent errors (bad input, access denied, missing bucket) never retry.",
    )
    ingest_retry_base_delay: float = Field(
        2.0, ge=0, description="Seconds: retry n waits a random time in [0, base * 2**(n-1)] (full jitter), "
        "capped by ingest_retry_max_delay.",
    )
    ingest_retry_max_delay: float = Field(60.0, ge=0, description="Upper bound of one retry wait, in seconds.")
    lock_ttl: float = Field(
        120.0, gt=0, description="SQLite source lock: seconds a lock row stays valid without a heartbeat (the "
        "holder renews it every ttl/4); a lock of a dead process on this host is taken over at once.",
    )
    scheduler_misfire_grace: int = Field(
        3600, gt=0, description="Seconds a scheduled ingest may start late (the process was down or busy) and "
        "still run; missed fires are coalesced into one run.",
    )
    scheduler_sync_seconds: float = Field(
        30.0, gt=0, description="How often `serve` re-reads the sources table to add, change or remove jobs.",
    )

    auth: Literal["enabled", "disabled"] = Field(
        "enabled", description="API authentication. `disabled` makes every /v1 route open (no key, admin rights): "
        "only for the local demo; `cloudtally serve` refuses it unless bound to a loopback address.",
    )
    api_key_secret: str | None = Field(
        None, description="Server secret of the API keys' HMAC-SHA256 digests. Default: a random secret generated "
        "once into <data_dir>/api-key-secret (mode 0600). Changing it invalidates every key.",
        repr=False,
    )

    @cached_property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'control.db').resolve()}"

    @cached_property
    def resolved_warehouse_path(self) -> Path:
        return (self.warehouse_path or self.data_dir / "warehouse.duckdb").resolve()

    @property
    def raw_dir(self) -> Path:
        """Where connectors keep the files they fetched from remote locations."""
        return self.data_dir / "raw"


def get_settings() -> Settings:
    return Settings()
