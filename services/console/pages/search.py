"""The search box on every page: clients and staff by name, pinyin initials, phone, account
or employee number (the directory's SearchClients / SearchStaff, scoped by the caller)."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from branch.directory.v1 import search_pb2
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.console import web

PAGE_SIZE = 10


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


ROUTES = [Route("/search", search, methods=["GET"])]
