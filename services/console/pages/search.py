"""The search box on every page: clients and staff by name, pinyin initials, phone, account
or employee number (the directory's SearchClients / SearchStaff, scoped by the caller); and
the matches of a form's picker as you type (`/pick/clients`, `/pick/staff/consultant`, with
`field`, the form's field, and `id`, the box's id; the words in `<field>_q`)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import grpc
from branch.directory.v1 import search_pb2
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.console import picker, web
from services.console.i18n import _

PAGE_SIZE = 10
NAME = re.compile(r"[a-z][a-z0-9_-]{0,39}")  # a picker's field and box id


async def _or_none(call: Any) -> Any:
    """A search the caller's role may not make (staff, for some roles) just shows nothing."""
    try:
        return await call
    except grpc.aio.AioRpcError as err:
        if err.code() == grpc.StatusCode.PERMISSION_DENIED:
            return None
        raise


async def search(request: Request) -> Response:
    q = request.query_params.get("q", "").strip()[:100]
    clients: Any = None
    staff: Any = None
    if q:
        st = await web.stubs(request)
        clients, staff = await asyncio.gather(
            _or_none(st.directory.SearchClients(search_pb2.SearchClientsRequest(
                query=q, page_size=PAGE_SIZE), metadata=st.metadata)),
            _or_none(st.directory.SearchStaff(search_pb2.SearchStaffRequest(
                query=q, page_size=PAGE_SIZE), metadata=st.metadata)))
    context = {"q": q, "clients": clients.results if clients else [],
               "staff": staff.results if staff else []}
    if request.headers.get("hx-request"):
        return web.render(request, "pages/search/results.html", **context)
    return web.render(request, "pages/search/page.html", **context)


async def pick(request: Request) -> Response:
    kind = picker.KINDS.get(request.path_params["kind"])
    field = request.query_params.get("field", "")
    box = request.query_params.get("id", "")
    if kind is None or not NAME.fullmatch(field) or not NAME.fullmatch(box):
        raise HTTPException(404, _("There is no such list."))
    p = picker.Pick(kind, field)
    p.query = request.query_params.get(field + picker.QUERY_SUFFIX, "").strip()[:100]
    if p.query:
        p.choices = await kind.search(await web.stubs(request), p.query)
        p.searched = True
    return web.render(request, "pages/search/choices.html", p=p, id=box)


ROUTES = [Route("/search", search, methods=["GET"]),
          Route("/pick/{kind:path}", pick, methods=["GET"])]
