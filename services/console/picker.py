"""Choosing a client or a staff member in a form, at a branch of thousands: a search box
(the directory's SearchClients / SearchStaff: name, pinyin initials, phone, account or
employee number, scoped by the caller) and the matches as radio buttons named after the
form's field, so the form posts the chosen id.

With htmx the matches come as you type (`/pick/<kind>`, pages/pick.py); without script the
form posts the words typed, and `choose` answers with the matches to choose from (or the one
client the words name exactly). Template: `macros/picker.html`.

A form's handler:
    pick = await picker.choose(st, form, picker.CLIENTS, "client_id")
    if why := picker.to_choose(pick):  # words typed, nothing chosen yet
        ... show the form again with `why` (pick.choices beside the field)
    ... call the service with pick.chosen (empty: the service says the field is required)
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as default
from typing import Any

import grpc
from branch.directory.v1 import client_pb2, search_pb2, staff_pb2
from branch.directory.v1 import directory_service_pb2 as dapi
from starlette.datastructures import FormData, QueryParams

from services.console.i18n import N_, _, ngettext
from services.console.views import Refusal

CHOOSE = N_("Choose from the matches below, then send the form again.")
MATCHES = 20  # shown at most; the words narrow it down
QUERY_SUFFIX = "_q"  # the search box's name: the field's name and this


@dataclass(frozen=True)
class Choice:
    id: str
    label: str  # the name
    detail: str  # what tells two of the same name apart (account or employee number)


@dataclass(frozen=True)
class Kind:
    """What a picker chooses: its path under /pick/ and the words around it."""

    path: str  # "clients", "staff/consultant"
    hint: str  # what to type; marked with N_
    none_words: str  # marked with N_
    role: int = 0  # staff: only those with this role (and active)

    async def search(self, st: Any, query: str) -> list[Choice]:
        if self.role:
            staff = await st.directory.SearchStaff(search_pb2.SearchStaffRequest(
                query=query, page_size=MATCHES * 2), metadata=st.metadata)
            return [Choice(s.id, s.display_name, s.employee_no) for s in staff.results
                    if s.active and self.role in s.roles][:MATCHES]
        clients = await st.directory.SearchClients(search_pb2.SearchClientsRequest(
            query=query, page_size=MATCHES * 2), metadata=st.metadata)
        return [Choice(c.id, c.display_name, c.account_no) for c in clients.results
                if c.status == client_pb2.CLIENT_STATUS_ACTIVE][:MATCHES]

    async def exact(self, st: Any, query: str) -> Choice | None:
        """The one the words name exactly (whole account/employee number, phone or name)."""
        if self.role:
            staff = await st.directory.SearchStaff(search_pb2.SearchStaffRequest(
                query=query, page_size=2), metadata=st.metadata)
            found: list[Any] = [s for s in staff.results if s.exact and s.active
                                and self.role in s.roles]
            return Choice(found[0].id, found[0].display_name, found[0].employee_no) \
                if len(found) == 1 else None
        clients = await st.directory.SearchClients(search_pb2.SearchClientsRequest(
            query=query, page_size=2), metadata=st.metadata)
        found = [c for c in clients.results
                 if c.exact and c.status == client_pb2.CLIENT_STATUS_ACTIVE]
        return Choice(found[0].id, found[0].display_name, found[0].account_no) \
            if len(found) == 1 else None

    async def named(self, st: Any, id_: str) -> Choice | None:
        """The chosen one's name (the service's scope applies: None when not to be seen)."""
        try:
            if self.role:
                s = await st.directory.GetStaff(dapi.GetStaffRequest(id=id_),
                                                metadata=st.metadata)
                return Choice(s.id, s.display_name, s.employee_no)
            c = await st.directory.GetClient(dapi.GetClientRequest(id=id_),
                                             metadata=st.metadata)
            return Choice(c.id, c.display_name, c.account_no)
        except grpc.aio.AioRpcError as err:
            if err.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED,
                              grpc.StatusCode.INVALID_ARGUMENT):
                return None
            raise


CLIENTS = Kind("clients", N_("Type a name, pinyin initials, phone or account number"),
               N_("No client of yours matches these words."))
CONSULTANTS = Kind("staff/consultant", N_("Type a name, pinyin initials or employee number"),
                   N_("No consultant matches these words."), role=staff_pb2.ROLE_CONSULTANT)
KINDS = {k.path: k for k in (CLIENTS, CONSULTANTS)}


@dataclass
class Pick:
    """A picker's state: the field's name, the words typed, the chosen id, the matches."""

    kind: Kind
    field: str
    query: str = ""
    chosen: str = ""
    choices: list[Choice] = default(default_factory=list)
    searched: bool = False  # choices are the matches of query (else: only the chosen one)

    @property
    def pending(self) -> bool:
        """Words typed but nothing chosen: the person must choose among the matches."""
        return bool(self.query) and not self.chosen

    def words(self) -> str:
        """What the matches are, for the legend of the radio buttons."""
        if not self.searched:
            return _("Chosen")
        if not self.choices:
            return _(self.kind.none_words)
        n = len(self.choices)
        if self.pending:
            return ngettext("Choose the one match", "Choose one of {n} matches", n).format(n=n)
        return ngettext("{n} match", "{n} matches", n).format(n=n)


def _text(values: FormData | QueryParams, name: str) -> str:
    value = values.get(name)
    return value.strip()[:100] if isinstance(value, str) else ""


async def choose(st: Any, values: FormData | QueryParams, kind: Kind, field_name: str) -> Pick:
    """The picker of `field_name` as posted: the chosen id, else the one the words name
    exactly, else the matches to choose from."""
    pick = Pick(kind, field_name, _text(values, field_name + QUERY_SUFFIX),
                _text(values, field_name))
    if pick.chosen or not pick.query:
        return pick
    exact = await kind.exact(st, pick.query)
    if exact:
        pick.chosen = exact.id
        pick.choices = [exact]
        return pick
    pick.choices = await kind.search(st, pick.query)
    pick.searched = True
    return pick


async def shown(st: Any, kind: Kind, field_name: str, typed: dict[str, str]) -> Pick:
    """The picker as a page shows it again (a refused form, a link naming the client): the
    matches of the words typed with the chosen one checked, or the chosen one alone."""
    pick = Pick(kind, field_name, typed.get(field_name + QUERY_SUFFIX, ""),
                typed.get(field_name, ""))
    if pick.query:
        pick.choices = await kind.search(st, pick.query)
        pick.searched = True
    if pick.chosen and all(c.id != pick.chosen for c in pick.choices):
        named = await kind.named(st, pick.chosen)
        if named:
            pick.choices.insert(0, named)
    return pick


def to_choose(*picks: Pick) -> Refusal | None:
    """Why a form is shown again instead of sent: words typed in a picker but nothing chosen
    (each such field says how many match); None when every picker has its choice."""
    pending = [p for p in picks if p.pending]
    return Refusal(_(CHOOSE), {p.field: p.words() for p in pending}) if pending else None
