"""Alembic environment: runs on the connection :func:`matcher.store.migrate.upgrade` opened."""

from __future__ import annotations

from alembic import context

from matcher.store.schema import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `matcher db upgrade`, which opens the connection")
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
