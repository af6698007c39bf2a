"""`/`: the home page of the signed-in person's role. A role whose page is not built yet
shows what exists for it so far (other modules replace those entries with real pages)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from services.console import web
from services.console.i18n import N_

# role -> the path of its home page; the first of a person's roles found here wins
HOMES = {"admin": "/admin/staff", "client_manager": "/day", "consultant": "/forms",
         "service_agent": "/desk", "supervisor": "/supervisor", "broker": "/inbox",
         "analyst": "/notes", "compliance": "/review", "quality_inspector": "/inspections"}
# what a role without its own home page can already open
COMING: dict[str, list[str]] = {
}


async def home(request: Request) -> Response:
    s = web.session_of(request)
    for role in s.roles:
        if role in HOMES:
            return RedirectResponse(HOMES[role], status_code=303)
    items = [i for r in s.roles for i in COMING.get(r, [])]
    return web.render(request, "pages/home/coming.html", items=list(dict.fromkeys(items)))


ROUTES = [Route("/", home, methods=["GET"])]
NAV = [web.NavItem("/", N_("Home"), frozenset())]
