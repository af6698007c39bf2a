"""The difference between two revisions of a note, as rows of a side-by-side table: lines by
difflib's SequenceMatcher, and within a changed line the characters that differ (Chinese has no
spaces, so words would be whole sentences). Pure: text in, rows out; the template marks
removed text with <del> and added text with <ins>."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from itertools import zip_longest

# a changed line pair is shown character by character unless it is mostly different
SIMILAR = 0.4


@dataclass
class Side:
    number: int | None  # 1-based line number, None where the line does not exist on this side
    # (changed?, text) pieces; joined they are the line
    pieces: list[tuple[bool, str]] = field(default_factory=list)


@dataclass
class Row:
    kind: str  # same, changed, removed, added
    old: Side
    new: Side


def _pieces(a: str, b: str) -> tuple[list[tuple[bool, str]], list[tuple[bool, str]]]:
    sm = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    if sm.ratio() < SIMILAR:
        return [(True, a)], [(True, b)]
    old: list[tuple[bool, str]] = []
    new: list[tuple[bool, str]] = []
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        if a[i1:i2]:
            old.append((tag != "equal", a[i1:i2]))
        if b[j1:j2]:
            new.append((tag != "equal", b[j1:j2]))
    return old, new


def rows(old: list[str], new: list[str]) -> list[Row]:
    """Side-by-side rows turning `old` lines into `new` lines."""
    out: list[Row] = []
    sm = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        if tag == "equal":
            for k in range(i2 - i1):
                line = old[i1 + k]
                out.append(Row("same", Side(i1 + k + 1, [(False, line)]),
                               Side(j1 + k + 1, [(False, line)])))
            continue
        pairs = zip_longest(range(i1, i2), range(j1, j2))
        for i, j in pairs:
            if i is not None and j is not None:
                a, b = _pieces(old[i], new[j])
                out.append(Row("changed", Side(i + 1, a), Side(j + 1, b)))
            elif i is not None:
                out.append(Row("removed", Side(i + 1, [(True, old[i])]), Side(None)))
            elif j is not None:
                out.append(Row("added", Side(None), Side(j + 1, [(True, new[j])])))
    return out


def changed(table: list[Row]) -> int:
    """How many rows differ."""
    return sum(1 for r in table if r.kind != "same")
