"""Alembic environment: runs on the engine the app hands over (no alembic.ini URL, no secrets)."""

from __future__ import annotations

from alembic import context
from vinaforge_collect.models import Base

config = context.config
engine = config.attributes.get("connection_engine")
if engine is None:  # `alembic` command line: the URL comes from the environment
    from vinaforge_collect.config import Settings
    from vinaforge_collect.db import make_engine

    engine = make_engine(Settings.from_env().database_url)

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
