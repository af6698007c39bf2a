"""branchctl's one printer: a list as a table for people, or as JSON or CSV for scripts
(`--output table|json|csv`), and one record as a readable field/value view.

JSON is a list of objects keyed by the column names; CSV has the column names as its header.
Both carry the values the command shows, uncut (full ids; the table may fold long cells).
"""

from __future__ import annotations

import csv
import json
import re
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from services.cli import timefmt
from services.cli.i18n import Label, _

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


ID_PATTERN = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


def id_width(header: str, cells: list[str]) -> int:
    """The width of the longest id in a column (0: no ids)."""
    ids = [m.group(0) for c in cells for m in ID_PATTERN.finditer(c)]
    if header.strip().lower() in ("id", "ids") or header.strip().lower().endswith(" id"):
        ids += [c for c in cells if c and not any(ch.isspace() for ch in c)]
    return max((len(i) for i in ids), default=0)


def write_message(msg: Message, items: Sequence[Message] = (), key: str = "items") -> None:
    """One record as JSON with the API's field names and raw values (enum names, RFC 3339
    UTC times, money as decimal strings), with `items` (e.g. its holdings) under `key`."""
    from google.protobuf.json_format import MessageToDict

    doc = MessageToDict(msg, preserving_proto_field_name=True)
    if items:
        doc[key] = [MessageToDict(i, preserving_proto_field_name=True) for i in items]
    sys.stdout.write(json.dumps(doc, ensure_ascii=False, indent=2) + "\n")


def emit(fmt: str, console: Any, title: str, columns: Sequence[str],
         rows: Sequence[Sequence[Any]]) -> None:
    """Print a list in `fmt` (one of FORMATS); table goes through the rich console."""
    if fmt == "json":
        write_json(sys.stdout, title, columns, rows)
    elif fmt == "csv":
        write_csv(sys.stdout, title, columns, rows)
    else:
        from rich.measure import Measurement
        from rich.table import Table

        # Ids are never cut: a column holding ids (a UUID anywhere in a cell, or every cell
        # of an "id" column) is at least as wide as its longest id, so narrow terminals wrap
        # names and free text instead ("…" only ends long free text, Short).
        shown_title, shown_columns = headings(title, columns)
        table = Table(title=shown_title)
        for i, (col, shown) in enumerate(zip(columns, shown_columns, strict=True)):
            cells = [_cell(row[i]) for row in rows if i < len(row)]
            table.add_column(shown, min_width=id_width(col, cells) or None)
        for row in rows:
            table.add_row(*[_cell(c) for c in row])
        # a table that cannot fit keeps its ids whole: the line grows past the terminal
        # (which wraps it) rather than rich cropping the columns on the right
        needed = Measurement.get(console, console.options, table).minimum
        console.print(table, width=max(needed, console.width), crop=False)


def headings(title: str, columns: Sequence[str]) -> tuple[str, list[str]]:
    """A table's title and column names as shown: each through the catalogue (a title made
    with _("...").format() is already translated and passes unchanged). scripts/i18n.py
    extracts the literal titles and column names of every ctl.table() call."""
    return (_(title) if title else title), [_(c) if c else c for c in columns]


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
    if isinstance(value, Label):
        return value.shown()
    return str(value)


def humane_enum(field: FieldDescriptor, number: int) -> str:
    """CHANNEL_ONSITE -> onsite; an unspecified (0) value -> ''."""
    if number == 0:
        return ""
    if field.enum_type is None:  # not an enum field
        return str(number)
    value = field.enum_type.values_by_number.get(number)
    if value is None:
        return str(number)
    name = value.name.removeprefix(_enum_prefix(field) or value.name.split("_")[0] + "_")
    if len(name) == 2 and name[1].isdigit():  # C1-C5, R1-R5 stay as written
        return name
    return name.lower().replace("_", " ")


def _enum_prefix(field: FieldDescriptor) -> str:
    names = [v.name for v in field.enum_type.values] if field.enum_type else [""]
    first = names[0]
    prefix = first[:first.rfind("UNSPECIFIED")] if "UNSPECIFIED" in first else ""
    return prefix if all(n.startswith(prefix) for n in names) else ""


def record_rows(msg: Message, prefix: str = "", words: bool = False) -> list[list[str]]:
    """One message as [field, value] rows for a person: set fields only, enums by their
    name, times branch-local with the year, nested messages as dotted names. `words`: the
    field names through the catalogue (a table; CSV keys stay as the API spells them)."""
    rows: list[list[str]] = []
    for field, value in msg.ListFields():
        word = field.name.replace("_", " ")
        name = prefix + (_(word) if words else word)
        if field.message_type is not None and field.message_type.full_name == \
                "google.protobuf.Timestamp" and not field.is_repeated:
            rows.append([name, timefmt.local(value, timefmt.DATE_TIME)])
        elif field.is_repeated:
            if field.type == FieldDescriptor.TYPE_ENUM:
                rows.append([name, ", ".join(humane_enum(field, v) for v in value)])
            elif field.message_type is not None:
                for i, item in enumerate(value):
                    rows += record_rows(item, f"{name} {i + 1}: ", words)
            else:
                rows.append([name, ", ".join(str(v) for v in value)])
        elif field.type == FieldDescriptor.TYPE_ENUM:
            rows.append([name, humane_enum(field, value)])
        elif field.message_type is not None:
            rows += record_rows(value, f"{name} ", words)
        elif field.type == FieldDescriptor.TYPE_BOOL:
            yes_no = (_("yes"), _("no")) if words else ("yes", "no")
            rows.append([name, yes_no[0] if value else yes_no[1]])
        else:
            rows.append([name, str(value)])
    return rows
