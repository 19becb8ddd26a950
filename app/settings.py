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
        default_factory=lambda: default_memory_limit(),
        description="DuckDB memory_limit for warehouse work (e.g. 1GB, 4GB, or 'none' for DuckDB's own default of "
        "80% of RAM); DuckDB spills to the temp directory beyond it. Default: a quarter of the machine's memory "
        "(physical RAM or the cgroup limit, whichever is lower), at least 512MB and at most 2GB, leaving room for "
        "the API and other work. A 100M-line AWS CUR 2.0 month ingests, allocates and rolls up within the 2GB default "
        "(peak RSS 2.4 GB; bench/RESULTS.md, 'Scale').",
    )
    warehouse_threads: int | None = Field(
        default_factory=lambda: default_threads(), ge=1,
        description="DuckDB threads for warehouse work. Default: the CPUs this process may use (CPU affinity and "
        "the cgroup CPU quota, whichever is lower).",
    )
    warehouse_temp_directory: Path | None = Field(
        None,
        description="Where DuckDB spills intermediate results that exceed the memory limit (large joins, sorts, "
        "aggregates of an ingest, allocation or rollup). Default: `<warehouse file>.tmp` beside the warehouse. Put "
        "it on a fast local disk with room for a few times the largest month's Parquet size.",
    )
    warehouse_max_temp_size: str | None = Field(
        None,
        description="Upper bound of the spill files (DuckDB max_temp_directory_size, e.g. 50GB); work that needs "
        "more fails instead of filling the disk. Default: DuckDB's own (90% of the free disk space).",
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
    api_cache_mb: int = Field(
        64, ge=0, description="Memory (MiB) per `serve` process for answers to repeated cost and finance queries. "
        "An answer is kept only while the warehouse file stays unchanged (any ingest, allocation or rollup rebuild "
        "forgets them all) and is keyed on the query and the key's team scope; keys are still checked on every "
        "request. 0 turns it off.",
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


def _cgroup_value(path: str) -> int | None:
    try:
        text = Path(path).read_text().split()
    except OSError:
        return None
    return int(text[0]) if text and text[0].isdigit() else None


def machine_memory_bytes() -> int:
    """Physical memory, or the cgroup (v2 or v1) memory limit when that is lower."""
    import os

    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        limit = _cgroup_value(path)
        if limit and limit < total:
            total = limit
    return total


def default_memory_limit() -> str:
    """A quarter of the machine's memory, clamped to [512MB, 2GB] (see Settings.warehouse_memory_limit)."""
    mb = machine_memory_bytes() // 4 // 2**20
    return f"{max(512, min(2048, mb))}MB"


def default_threads() -> int:
    """The CPUs this process may run on, lowered to the cgroup v2 CPU quota (cpu.max) when there is one."""
    import math
    import os

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


def get_settings() -> Settings:
    return Settings()
