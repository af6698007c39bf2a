"""The console's ASGI application: every page module mounted in one place (PAGES), the
middleware that every request passes (language, session and its expiry, security headers),
and the refusal pages (401/403/404/expired/unavailable say why in words, never a traceback).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from types import ModuleType
from urllib.parse import quote, urlsplit

import grpc
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from services.common.clock import Clock, SystemClock
from services.common.logs import get_logger
from services.common.settings import Settings
from services.console import csrf, i18n, sessions, web
from services.console.backend import Backend, SignedOut, error_message
from services.console.i18n import _
from services.console.pages import (
    admin,
    auth,
    clients,
    day,
    desk,
    forms,
    home,
    inbox,
    inspections,
    notes,
    reports,
    requests,
    review,
    search,
    supervisor,
)
from services.console.sessions import SessionStore

# Every page module, mounted in this order; a new area is one line here (README.md).
PAGES: tuple[ModuleType, ...] = (auth, home, search, clients, admin, day, forms, desk, reports,
                                  supervisor, inbox, notes, requests, review, inspections)
PUBLIC_PREFIXES = ("/signin", "/password", "/static/", "/healthz", "/lang")
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
       "form-action 'self'")
log = get_logger("console")


def _is_public(path: str) -> bool:
    return path == "/signin" or any(path.startswith(p) for p in PUBLIC_PREFIXES)


def _to_sign_in(request: Request, reason: str) -> Response:
    target = f"/signin?reason={reason}"
    htmx = bool(request.headers.get("hx-request"))
    # after signing in again, an htmx swap's person goes back to the page, not the fragment
    path = (urlsplit(request.headers.get("hx-current-url", "")).path if htmx else ""
            ) or request.url.path
    if path not in ("/", "/signin"):
        target += "&next=" + quote(path)
    if htmx:  # an htmx swap: make the whole page move
        return Response(status_code=200, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


class ConsoleMiddleware(BaseHTTPMiddleware):
    async def dispatch(self, request: Request,
                       call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        c = web.console(request)
        i18n.activate(i18n.choose(request.cookies.get(i18n.LANG_COOKIE),
                                  request.headers.get("accept-language")))
        request.state.session = None
        sid = request.cookies.get(sessions.COOKIE, "")
        ended: str | None = None
        if sid:
            s = await c.store.get(sid)
            now = c.clock.now()
            if s is None:
                ended = sessions.ENDED
            else:
                ended = sessions.expiry(
                    s, now, timedelta(seconds=c.settings.console_session_idle_seconds),
                    timedelta(seconds=c.settings.console_session_max_seconds))
                if ended:
                    await c.store.delete(sid)
                else:
                    if sessions.needs_touch(s, now):
                        s.last_seen = now.isoformat()
                        if not await c.store.replace(s):  # changed meanwhile: take that
                            s = await c.store.get(sid) or s
                    request.state.session = s
        pre = request.cookies.get(csrf.PRE_SESSION_COOKIE, "")
        request.state.pre_csrf = pre or csrf.new_token()
        if request.state.session is None and not _is_public(request.url.path):
            response = _to_sign_in(request, ended or "signin")
        else:
            response = await call_next(request)
        if ended:
            response.delete_cookie(sessions.COOKIE, path="/")
        if not pre and request.state.session is None:
            response.set_cookie(csrf.PRE_SESSION_COOKIE, request.state.pre_csrf, httponly=True,
                                samesite="strict", secure=request.url.scheme == "https",
                                path="/")
        h = response.headers
        h.setdefault("Content-Security-Policy", CSP)  # or a page's own (sandboxed doc)
        h["X-Content-Type-Options"] = "nosniff"
        h["Referrer-Policy"] = "same-origin"
        h["X-Frame-Options"] = "DENY"
        if not request.url.path.startswith("/static/"):
            h["Cache-Control"] = "no-store"
        # the server's time for this request up to its response (session, the page's gRPC
        # calls, rendering), in ms: bench/console_pages.py reads it; browsers show it
        h["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
        return response


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    titles = {401: _("Please sign in"), 403: _("Not allowed"), 404: _("Not found"),
              405: _("Not allowed")}
    return web.render(request, "refused.html", status_code=exc.status_code,
                      title=titles.get(exc.status_code, _("Something went wrong")),
                      message=exc.detail if exc.detail and exc.status_code in (401, 403, 404)
                      else "")


async def _rpc_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, grpc.aio.AioRpcError)
    code = exc.code()
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return _to_sign_in(request, sessions.ENDED)
    status = {grpc.StatusCode.PERMISSION_DENIED: 403, grpc.StatusCode.NOT_FOUND: 404,
              grpc.StatusCode.UNAVAILABLE: 503,
              grpc.StatusCode.DEADLINE_EXCEEDED: 504}.get(code, 400)
    title = {403: _("Not allowed"), 404: _("Not found"),
             503: _("A service is not answering"), 504: _("A service is not answering")}
    # the services' refusals name ids and rules in English: a person reads why in words
    message = {403: _("This is outside your role or your clients."),
               404: _("It does not exist, or it was removed.")}.get(status) or error_message(
                   exc, i18n.current())
    if status >= 500:
        log.warning("service unavailable", rpc_status=code.name, path=request.url.path)
        message = _("Please try again in a moment.")
    return web.render(request, "refused.html", status_code=status,
                      title=title.get(status, _("The request was refused")), message=message)


async def _signed_out(request: Request, exc: Exception) -> Response:
    sid = request.cookies.get(sessions.COOKIE, "")
    if sid:
        await web.console(request).store.delete(sid)
    return _to_sign_in(request, sessions.ENDED)


async def _bug(request: Request, exc: Exception) -> Response:
    ref = secrets.token_hex(4)
    log.error("console bug", path=request.url.path, ref=ref, error=type(exc).__name__,
              exc_info=exc)
    return web.render(request, "refused.html", status_code=500,
                      title=_("Something went wrong"),
                      message=_("This is a fault in the console, not something you did. "
                                "Reference: {ref}").format(ref=ref))


def build_app(settings: Settings, store: SessionStore, clock: Clock | None = None,
              backend: Backend | None = None) -> Starlette:
    """The console for `settings`, keeping sessions in `store`."""
    web.set_zone(settings.timezone)
    routes: list[Route | Mount] = []
    nav: list[web.NavItem] = []
    for module in PAGES:
        routes += module.ROUTES
        nav += getattr(module, "NAV", [])
    routes.append(Mount("/static", StaticFiles(directory=str(web.HERE / "static")),
                        name="static"))
    app = Starlette(routes=routes, middleware=[Middleware(ConsoleMiddleware)],
                    exception_handlers={HTTPException: _http_error,
                                        grpc.aio.AioRpcError: _rpc_error,
                                        SignedOut: _signed_out, Exception: _bug})
    app.state.console = web.Console(settings=settings, store=store,
                                    backend=backend or Backend(settings, store),
                                    clock=clock or SystemClock(), nav=nav)
    return app
