"""Alembic environment: uses the engine handed over by labelloop.store.migrate."""

from __future__ import annotations

from alembic import context

import labelloop.models  # noqa: F401  (registers every table on Base.metadata)
from labelloop.store.base import Base
from labelloop.store.engine import make_engine

config = context.config
engine = config.attributes.get("engine") or make_engine(
    config.get_main_option("sqlalchemy.url") or ""
)

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
