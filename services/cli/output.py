"""branchctl's one printer: a list as a table for people, or as JSON or CSV for scripts
(`--output table|json|csv`), and one record as a readable field/value view.

JSON is a list of objects keyed by the column names; CSV has the column names as its header.
Both carry the values the command shows, uncut (full ids; the table may fold long cells).
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from services.cli import timefmt
from services.cli.i18n import _

FORMATS = ("table", "json", "csv")


def _keys(columns: Sequence[str]) -> list[str]:
    return [c or f"column{i + 1}" for i, c in enumerate(columns)]


def plain(value: Any) -> Any:
    """A cell as JSON takes it: numbers and booleans kept, everything else as text."""
    if value is None or isinstance(value, bool | int | float):
        return value
    return str.__str__(value)


def write_json(out: TextIO, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
               ) -> None:
    keys = _keys(columns)
    out.write(json.dumps([dict(zip(keys, map(plain, row), strict=False)) for row in rows],
                         ensure_ascii=False, indent=2) + "\n")


def write_csv(out: TextIO, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
              ) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_keys(columns))
    for row in rows:
        writer.writerow(["" if c is None else plain(c) for c in row])


def emit(fmt: str, console: Any, title: str, columns: Sequence[str],
         rows: Sequence[Sequence[Any]]) -> None:
    """Print a list in `fmt` (one of FORMATS); table goes through the rich console."""
    if fmt == "json":
        write_json(sys.stdout, title, columns, rows)
    elif fmt == "csv":
        write_csv(sys.stdout, title, columns, rows)
    else:
        from rich.table import Table

        table = Table(title=_(title) if title else title)
        for col in columns:
            table.add_column(_(col) if col else col)
        for row in rows:
            table.add_row(*[_cell(c) for c in row])
        console.print(table)


def cut(text: str, width: int) -> str:
    """`text` at most `width` characters, ending in … when cut."""
    return text if len(text) <= width else text[:width - 1] + "…"


class Short(str):
    """A cell shown at most `width` characters (with …) in a table, whole in JSON and CSV."""

    width: int

    def __new__(cls, text: str, width: int) -> Short:
        made = super().__new__(cls, text)
        made.width = width
        return made


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Short):
        return cut(str(value), value.width)
    return str(value)


def humane_enum(field: FieldDescriptor, number: int) -> str:
    """CHANNEL_ONSITE -> onsite; an unspecified (0) value -> ''."""
    if number == 0:
        return ""
    value = field.enum_type.values_by_number.get(number)
    if value is None:
        return str(number)
    name = value.name.removeprefix(_enum_prefix(field) or value.name.split("_")[0] + "_")
    if len(name) == 2 and name[1].isdigit():  # C1-C5, R1-R5 stay as written
        return name
    return name.lower().replace("_", " ")


def _enum_prefix(field: FieldDescriptor) -> str:
    names = [v.name for v in field.enum_type.values]
    first = names[0]
    prefix = first[:first.rfind("UNSPECIFIED")] if "UNSPECIFIED" in first else ""
    return prefix if all(n.startswith(prefix) for n in names) else ""


def record_rows(msg: Message, prefix: str = "") -> list[list[str]]:
    """One message as [field, value] rows for a person: set fields only, enums by their
    name, times branch-local with the year, nested messages as dotted names."""
    rows: list[list[str]] = []
    for field, value in msg.ListFields():
        name = prefix + field.name.replace("_", " ")
        if field.message_type is not None and field.message_type.full_name == \
                "google.protobuf.Timestamp" and not field.is_repeated:
            rows.append([name, timefmt.local(value, timefmt.DATE_TIME)])
        elif field.is_repeated:
            if field.type == FieldDescriptor.TYPE_ENUM:
                rows.append([name, ", ".join(humane_enum(field, v) for v in value)])
            elif field.message_type is not None:
                for i, item in enumerate(value):
                    rows += record_rows(item, f"{name} {i + 1}: ")
            else:
                rows.append([name, ", ".join(str(v) for v in value)])
        elif field.type == FieldDescriptor.TYPE_ENUM:
            rows.append([name, humane_enum(field, value)])
        elif field.message_type is not None:
            rows += record_rows(value, f"{name} ")
        elif field.type == FieldDescriptor.TYPE_BOOL:
            rows.append([name, "yes" if value else "no"])
        else:
            rows.append([name, str(value)])
    return rows
