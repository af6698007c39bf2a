"""Alembic environment shared by every service; each service keeps only its versions/."""

from __future__ import annotations

from alembic import context

config = context.config
connection = config.attributes["connection"]
target_metadata = config.attributes.get("target_metadata")
include_names = config.attributes.get("include_tables")


def _include(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
    if type_ == "table" and include_names is not None:
        return name in include_names
    return True


context.configure(
    connection=connection,
    target_metadata=target_metadata,
    include_object=_include,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
