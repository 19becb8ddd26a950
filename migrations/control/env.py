"""Alembic environment for CloudTally's control database (URL from the alembic config or CLOUDTALLY_DATABASE_URL)."""
from alembic import context
from sqlalchemy import pool

from app.control import Base, make_engine

config = context.config
url = config.get_main_option("sqlalchemy.url")
if not url:
    from app.settings import get_settings

    url = get_settings().resolved_database_url


def run_migrations_offline() -> None:
    context.configure(url=url, target_metadata=Base.metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
