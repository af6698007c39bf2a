"""Sign-in, forced and voluntary password change, sign-out, the language switch, /healthz."""

from __future__ import annotations

import grpc
from branch.directory.v1 import directory_service_pb2 as dapi
from branch.directory.v1 import identity_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from services.console import csrf, i18n, sessions, web
from services.console.backend import bad_fields, error_message
from services.console.i18n import N_, _
from services.console.sessions import Session

REASONS = {
    "idle": N_("You were signed out after a time without activity. Please sign in again."),
    "absolute": N_("Your sign-in reached its maximum length. Please sign in again."),
    "ended": N_("Your sign-in has ended. Please sign in again."),
    "signin": N_("Please sign in to continue."),
    "signedout": N_("You have signed out."),
    "changed": N_("Your password was changed. Please sign in with the new one."),
}


def _safe_next(value: str) -> str:
    """A local path to go to after sign-in; '/' for anything else (no open redirect)."""
    return value if value.startswith("/") and not value.startswith("//") else "/"


async def signin_page(request: Request) -> Response:
    if getattr(request.state, "session", None) is not None:
        return RedirectResponse("/", status_code=303)
    reason = request.query_params.get("reason", "")
    return web.render(request, "pages/auth/signin.html", notice=_(REASONS[reason])
                      if reason in REASONS else "", error="", employee_no="",
                      next=_safe_next(request.query_params.get("next", "/")))


async def signin(request: Request, form: FormData) -> Response:
    c = web.console(request)
    employee_no, password = web.text(form, "employee_no"), form.get("password")
    password = password if isinstance(password, str) else ""
    nxt = _safe_next(web.text(form, "next"))
    if not employee_no or not password:
        return web.render(request, "pages/auth/signin.html", status_code=400, notice="",
                          error=_("Enter your employee number and password."),
                          employee_no=employee_no, next=nxt)
    try:
        reply = await c.backend.identity.Login(identity_pb2.LoginRequest(
            employee_no=employee_no, password=password), timeout=15)
    except grpc.aio.AioRpcError as err:
        if err.code() == grpc.StatusCode.FAILED_PRECONDITION:
            return web.render(request, "pages/auth/password.html", employee_no=employee_no,
                              forced=True, error="", fields={})
        if err.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED,
                          grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED):
            message = (error_message(err, i18n.current())
                       if err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                       else _("The employee number or password is wrong."))
            return web.render(request, "pages/auth/signin.html", status_code=401, notice="",
                              error=message, employee_no=employee_no, next=nxt)
        raise
    now = c.clock.now()
    staff = await c.backend.directory_stub().GetStaff(
        dapi.GetStaffRequest(id=reply.staff_id),
        metadata=(("authorization", f"Bearer {reply.access_token}"),), timeout=15)
    s = Session(id=sessions.new_id(), staff_id=reply.staff_id, employee_no=staff.employee_no,
                display_name=staff.display_name, roles=list(reply.roles),
                access_token=reply.access_token,
                access_expires=float(reply.access_expire_time.seconds),
                refresh_token=reply.refresh_token, csrf=csrf.new_token(),
                created_at=now.isoformat(), last_seen=now.isoformat())
    await c.store.put(s)
    response = RedirectResponse(nxt, status_code=303)
    response.set_cookie(sessions.COOKIE, s.id, httponly=True, samesite="lax",
                        secure=request.url.scheme == "https", path="/")
    return response


async def password_page(request: Request) -> Response:
    s: Session | None = getattr(request.state, "session", None)
    return web.render(request, "pages/auth/password.html", forced=False, error="", fields={},
                      employee_no=s.employee_no if s else "")


async def change_password(request: Request, form: FormData) -> Response:
    c = web.console(request)
    s: Session | None = getattr(request.state, "session", None)
    employee_no = s.employee_no if s else web.text(form, "employee_no")
    current, new, again = (str(form.get(k) or "") for k in ("password", "new_password",
                                                             "new_password_again"))
    forced = web.text(form, "forced") == "1"

    def again_page(error: str, fields: dict[str, str]) -> Response:
        return web.render(request, "pages/auth/password.html", status_code=400, forced=forced,
                          employee_no=employee_no, error=error, fields=fields)

    if new != again:
        return again_page("", {"new_password_again": _("The two new passwords differ.")})
    try:
        await c.backend.identity.ChangePassword(identity_pb2.ChangePasswordRequest(
            employee_no=employee_no, password=current, new_password=new), timeout=15)
    except grpc.aio.AioRpcError as err:
        if err.code() == grpc.StatusCode.INVALID_ARGUMENT:
            return again_page(error_message(err, i18n.current()), bad_fields(err))
        if err.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
            return again_page("", {"password": _("The current password is wrong.")})
        raise
    # the directory ended every sign-in of this person (their refresh tokens): the console
    # ends them all at once too, in every browser, not when each access token runs out
    if s is not None:
        await c.store.delete_staff(s.staff_id)
    response = RedirectResponse("/signin?reason=changed", status_code=303)
    response.delete_cookie(sessions.COOKIE, path="/")
    return response


async def signout(request: Request, form: FormData) -> Response:
    c = web.console(request)
    s: Session | None = getattr(request.state, "session", None)
    if s is not None:
        await c.store.delete(s.id)
        try:
            await c.backend.identity.Logout(
                identity_pb2.LogoutRequest(refresh_token=s.refresh_token), timeout=10)
        except grpc.aio.AioRpcError:
            pass  # the console's sign-in has ended either way; the refresh token expires
    response = RedirectResponse("/signin?reason=signedout", status_code=303)
    response.delete_cookie(sessions.COOKIE, path="/")
    return response


async def language(request: Request, form: FormData) -> Response:
    lang = i18n.normalise(web.text(form, "lang")) or "zh_CN"
    back = _safe_next(web.text(form, "next"))
    response = RedirectResponse(back, status_code=303)
    response.set_cookie(i18n.LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax",
                        httponly=True, secure=request.url.scheme == "https", path="/")
    return response


async def healthz(request: Request) -> Response:
    """Ready when the directory answers its health check (the console can sign people in)."""
    c = web.console(request)
    try:
        reply = await health_pb2_grpc.HealthStub(c.backend.channels["directory"]).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=3)
    except grpc.aio.AioRpcError as err:
        return PlainTextResponse(f"directory: {err.code().name}", status_code=503)
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        return PlainTextResponse("directory: not serving", status_code=503)
    return PlainTextResponse("ok")


ROUTES = [
    Route("/signin", signin_page, methods=["GET"]),
    Route("/signin", web.form_handler(signin), methods=["POST"]),
    Route("/password", password_page, methods=["GET"]),
    Route("/password", web.form_handler(change_password), methods=["POST"]),
    Route("/signout", web.form_handler(signout), methods=["POST"]),
    Route("/lang", web.form_handler(language), methods=["POST"]),
    Route("/healthz", healthz, methods=["GET"]),
]
