"""The running system's handles, built once from settings: the warehouse and the control database."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from app import control
from app.settings import Settings, get_settings
from app.warehouse import Resources, Warehouse


@dataclass
class Runtime:
    settings: Settings

    @classmethod
    def from_env(cls) -> Runtime:
        return cls(get_settings())

    @cached_property
    def warehouse(self) -> Warehouse:
        s = self.settings
        return Warehouse(
            s.resolved_warehouse_path, s.warehouse_lock_timeout, s.warehouse_memory_limit,
            Resources(threads=s.warehouse_threads, temp_directory=s.warehouse_temp_directory,
                      max_temp_size=s.warehouse_max_temp_size),
        )

    @cached_property
    def engine(self) -> Engine:
        return control.make_engine(self.settings.resolved_database_url)

    @cached_property
    def sessions(self) -> sessionmaker:
        return control.make_sessionmaker(self.engine)

    def init(self) -> int:
        """Create or upgrade both stores; returns the warehouse schema version. Safe to repeat."""
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        control.upgrade(self.settings.resolved_database_url)
        return self.warehouse.migrate()

    def close(self) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()
