"""What every page module uses: the templates, the signed-in person, the CSRF-checked form,
the navigation and the refusal page.

A page module (services/console/pages/<area>.py) declares
- ROUTES: its starlette Routes; a POST handler is wrapped with `form_handler`, which reads the
  form and refuses it (403) unless it carries the session's CSRF token;
- NAV: the header's links it adds, each with the roles that see it;
and renders templates/pages/<area>/*.html (which extend base.html) with `render`.
services/console/app.py mounts every module listed in PAGES.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.templating import Jinja2Templates

from services.common.clock import Clock
from services.common.settings import Settings
from services.console import csrf, i18n
from services.console.backend import Backend, Stubs
from services.console.feed import InboxFeed
from services.console.i18n import N_, _
from services.console.sessions import Session, SessionStore

HERE = Path(__file__).parent

# the token claim of each role, and its name for people
ROLE_NAMES = {
    "client_manager": N_("Client manager"),
    "consultant": N_("Consultant"),
    "service_agent": N_("Service agent"),
    "broker": N_("Broker"),
    "analyst": N_("Analyst"),
    "compliance": N_("Compliance"),
    "supervisor": N_("Supervisor"),
    "quality_inspector": N_("Quality inspector"),
    "admin": N_("Administrator"),
}


@dataclass(frozen=True)
class NavItem:
    href: str
    label: str  # marked with N_, translated when shown
    roles: frozenset[str]  # empty: everyone signed in


@dataclass
class Console:
    """The application's parts, on app.state.console."""

    settings: Settings
    store: SessionStore
    backend: Backend
    clock: Clock
    nav: Sequence[NavItem] = ()
    feed: InboxFeed | None = None  # vip events for the broker's live inbox (feed.py)


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(HERE / "templates")),
        autoescape=True, extensions=["jinja2.ext.i18n"])
    env.install_gettext_callables(  # type: ignore[attr-defined]
        gettext=i18n._, ngettext=i18n.ngettext, newstyle=True)
    env.globals.update(role_name=lambda r: _(ROLE_NAMES.get(str(r), str(r))), number=i18n.number,
                       html_lang=i18n.html_lang, current_lang=i18n.current)
    return env


templates = Jinja2Templates(env=_env())


def console(request: Request) -> Console:
    c: Console = request.app.state.console
    return c


def session_of(request: Request) -> Session:
    """The signed-in person (the middleware let only them through)."""
    s: Session | None = getattr(request.state, "session", None)
    if s is None:
        raise HTTPException(401, _("Please sign in."))
    return s


def require_role(request: Request, *roles: str) -> Session:
    """The session, or 403 naming the roles the page is for."""
    s = session_of(request)
    if not set(roles) & set(s.roles):
        names = ", ".join(_(ROLE_NAMES.get(r, r)) for r in roles)
        raise HTTPException(403, _("This page is for: {roles}.").format(roles=names))
    return s


async def stubs(request: Request) -> Stubs:
    """The services, called with the signed-in person's own token."""
    c = console(request)
    return await c.backend.stubs(session_of(request), c.clock.now())


def when(value: datetime | None) -> str:
    """A time in the branch's zone (set_zone, from the settings when the app is built)."""
    return i18n.when(value, _zone)


_zone = "Asia/Shanghai"


def set_zone(zone: str) -> None:
    global _zone
    _zone = zone


def render(request: Request, template: str, status_code: int = 200,
           **context: Any) -> HTMLResponse:
    """Render a template with what base.html needs: the person, the nav, the CSRF token."""
    c = console(request)
    s: Session | None = getattr(request.state, "session", None)
    nav = [n for n in c.nav if s and (not n.roles or n.roles & set(s.roles))]
    token = s.csrf if s else getattr(request.state, "pre_csrf", "")
    base = {"request": request, "me": s, "nav": nav, "csrf_token": token,
            "csrf_field": csrf.FIELD, "when": when, "lang": i18n.current(),
            "path": request.url.path}
    return templates.TemplateResponse(request, template, {**base, **context},
                                      status_code=status_code)


FormHandler = Callable[[Request, FormData], Awaitable[Response]]


def form_handler(handler: FormHandler) -> Callable[[Request], Awaitable[Response]]:
    """A POST endpoint: the form is read and refused (403, nothing done) unless its
    csrf_token (or the X-CSRF-Token header) matches the session's (before sign-in: the
    console_csrf cookie's)."""

    async def endpoint(request: Request) -> Response:
        form = await request.form()
        s: Session | None = getattr(request.state, "session", None)
        expected = s.csrf if s else request.cookies.get(csrf.PRE_SESSION_COOKIE, "")
        presented = form.get(csrf.FIELD) or request.headers.get(csrf.HEADER)
        if not csrf.valid(expected, presented if isinstance(presented, str) else None):
            raise HTTPException(403, _("This form has expired or did not come from this "
                                       "console. Nothing was changed; please try again."))
        return await handler(request, form)

    endpoint.__name__ = handler.__name__
    return endpoint


def text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""
