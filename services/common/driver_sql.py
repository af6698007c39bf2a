"""Core SELECTs run at the driver level (sqlite3: Database.fetch_one on a SQLite file), with
SQLAlchemy's SQL and types.

SQLAlchemy compiles the statement once for the dialect and supplies the type conversions of
its bound values and result columns (TypeDecorators such as UtcDateTime included); only the
execution skips SQLAlchemy's connection, cursor and result machinery, which for a one-row
primary-key read cost about eight times the query (bench/README.md, "GetClient,
2026-12-08"). Written for any DB-API driver's paramstyle; only sqlite3 uses it (a bare asyncpg
pool was tried on PostgreSQL and not kept).
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping
from typing import Any

from cachetools import LRUCache
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import Select

Processor = Callable[[Any], Any] | None


class DriverStatement:
    """One SELECT compiled for one dialect: its SQL text (the dialect's paramstyle: `?` for
    sqlite3, `$n` for asyncpg), the order of its parameters, and a row type whose fields are
    the selected columns' keys, holding values converted as SQLAlchemy would return them.
    Plain binds only: an expanding IN (a list value) is not rendered, and the driver refuses
    the SQL."""

    def __init__(self, statement: Select[Any], dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = str(compiled)
        self._names: tuple[str, ...] = tuple(compiled.positiontup or ())
        binds = {name: bind for bind, name in compiled.bind_names.items()}
        self._defaults: dict[str, Any] = {
            name: bind.effective_value for name, bind in binds.items() if not bind.required}
        self._binds: dict[str, Processor] = {
            name: bind.type.dialect_impl(dialect).bind_processor(dialect)
            for name, bind in binds.items()}
        columns = list(statement.selected_columns)
        self._results: list[Processor] = [
            c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns]
        self._plain = not any(self._results)
        self.row_type: type[tuple[Any, ...]] = namedtuple(  # type: ignore[misc]
            "DriverRow", [str(c.key) for c in columns])

    def args(self, params: Mapping[str, Any] | None) -> list[Any]:
        """The positional arguments for the driver: params over the statement's own bound
        literals, each through its type's bind conversion. Raises KeyError for a bindparam
        left without a value."""
        values = {**self._defaults, **(params or {})}
        out = []
        for name in self._names:
            value = values[name]
            process = self._binds.get(name)
            out.append(process(value) if process is not None and value is not None else value)
        return out

    def row(self, raw: Any) -> Any:
        """A driver row (tuple or asyncpg Record) as a row_type, values converted."""
        if self._plain:
            return self.row_type(*raw)
        return self.row_type(*(value if process is None else process(value)
                               for process, value in zip(self._results, raw, strict=True)))


class DriverStatements:
    """The DriverStatement of each statement object seen, for one dialect (the most recent
    256; the entry keeps its statement alive, so an id is never reused while cached)."""

    def __init__(self, dialect: Dialect, size: int = 256) -> None:
        self._dialect = dialect
        self._cache: LRUCache[int, tuple[Select[Any], DriverStatement]] = LRUCache(size)

    def __getitem__(self, statement: Select[Any]) -> DriverStatement:
        entry = self._cache.get(id(statement))
        if entry is None or entry[0] is not statement:
            entry = (statement, DriverStatement(statement, self._dialect))
            self._cache[id(statement)] = entry
        return entry[1]
