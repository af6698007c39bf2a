"""The admin's home: staff accounts (list and search), create a staff member, set roles,
deactivate, reset a password (the temporary one is shown once)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import grpc
from branch.directory.v1 import directory_service_pb2 as dapi
from branch.directory.v1 import identity_pb2, search_pb2, staff_pb2
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from services.console import i18n, web
from services.console.backend import bad_fields, error_message
from services.console.i18n import N_

ADMIN = "admin"
PAGE_SIZE = 50


def role_claim(role: int) -> str:
    return staff_pb2.Role.Name(role).removeprefix("ROLE_").lower()  # type: ignore[arg-type]


def role_enum(claim: str) -> int:
    return staff_pb2.Role.Value("ROLE_" + claim.upper())


async def staff_list(request: Request, *, error: str = "", fields: dict[str, str] | None = None,
                     typed: Mapping[str, object] | None = None, status_code: int = 200
                     ) -> Response:
    web.require_role(request, ADMIN)
    st = await web.stubs(request)
    q = request.query_params.get("q", "").strip()[:100]
    page_token = request.query_params.get("page", "")
    next_token = ""
    if q:
        found = await st.directory.SearchStaff(search_pb2.SearchStaffRequest(
            query=q, page_size=PAGE_SIZE, include_inactive=True), metadata=st.metadata)
        people: list[Any] = list(found.results)
    else:
        listed = await st.directory.ListStaff(dapi.ListStaffRequest(
            page_size=PAGE_SIZE, page_token=page_token, include_inactive=True),
            metadata=st.metadata)
        people, next_token = list(listed.staff), listed.next_page_token
    rows = [(r.id, r.employee_no, r.display_name, [role_claim(x) for x in r.roles], r.active)
            for r in people]
    return web.render(request, "pages/admin/staff_list.html", status_code=status_code,
                      rows=rows, q=q, next_token=next_token, roles=list(web.ROLE_NAMES),
                      error=error, fields=fields or {}, typed=typed or {})


async def create_staff(request: Request, form: FormData) -> Response:
    web.require_role(request, ADMIN)
    st = await web.stubs(request)
    roles = [str(r) for r in form.getlist("roles") if str(r) in web.ROLE_NAMES]
    typed = {"employee_no": web.text(form, "employee_no"),
             "display_name": web.text(form, "display_name"), "roles": roles}
    try:
        created = await st.directory.CreateStaff(dapi.CreateStaffRequest(
            staff=staff_pb2.Staff(employee_no=str(typed["employee_no"]),
                                  display_name=str(typed["display_name"]),
                                  roles=[role_enum(r) for r in roles]),  # type: ignore[misc]
            request_id=web.text(form, "request_id") or str(uuid.uuid4())),
            metadata=st.metadata)
    except grpc.aio.AioRpcError as err:
        if err.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.ALREADY_EXISTS):
            fields = {k.removeprefix("staff."): v for k, v in bad_fields(err).items()}
            return await staff_list(request, error=error_message(err, i18n.current()),
                                    fields=fields, typed=typed, status_code=400)
        raise
    return RedirectResponse(f"/admin/staff/{created.id}?created=1", status_code=303)


async def staff_detail(request: Request, *, temporary: str = "", message: str = "") -> Response:
    web.require_role(request, ADMIN)
    st = await web.stubs(request)
    staff = await st.directory.GetStaff(dapi.GetStaffRequest(
        id=request.path_params["staff_id"]), metadata=st.metadata)
    if request.query_params.get("created"):
        message = message or N_("The staff member was created.")
    return web.render(request, "pages/admin/staff_detail.html", staff=staff,
                      staff_roles=[role_claim(r) for r in staff.roles],
                      roles=list(web.ROLE_NAMES), temporary=temporary, message=message)


async def set_roles(request: Request, form: FormData) -> Response:
    web.require_role(request, ADMIN)
    st = await web.stubs(request)
    roles = [role_enum(str(r)) for r in form.getlist("roles") if str(r) in web.ROLE_NAMES]
    await st.identity.SetStaffRoles(identity_pb2.SetStaffRolesRequest(
        staff_id=request.path_params["staff_id"], roles=roles),  # type: ignore[arg-type]
        metadata=st.metadata)
    return await staff_detail(request, message=N_("Roles saved."))


async def deactivate(request: Request, form: FormData) -> Response:
    web.require_role(request, ADMIN)
    st = await web.stubs(request)
    await st.directory.DeactivateStaff(dapi.DeactivateStaffRequest(
        id=request.path_params["staff_id"]), metadata=st.metadata)
    # their console sign-ins end now, not when their access tokens run out
    await web.console(request).store.delete_staff(request.path_params["staff_id"])
    return await staff_detail(request, message=N_("The staff member was deactivated."))


async def reset_password(request: Request, form: FormData) -> Response:
    web.require_role(request, ADMIN)
    st = await web.stubs(request)
    reply = await st.identity.ResetPassword(identity_pb2.ResetPasswordRequest(
        staff_id=request.path_params["staff_id"]), metadata=st.metadata)
    # the directory ended their sign-ins (refresh tokens revoked): so does the console, now
    await web.console(request).store.delete_staff(request.path_params["staff_id"])
    return await staff_detail(request, temporary=reply.temporary_password,
                              message=N_("The password was reset."))


ROUTES = [
    Route("/admin/staff", staff_list, methods=["GET"]),
    Route("/admin/staff", web.form_handler(create_staff), methods=["POST"]),
    Route("/admin/staff/{staff_id}", staff_detail, methods=["GET"]),
    Route("/admin/staff/{staff_id}/roles", web.form_handler(set_roles), methods=["POST"]),
    Route("/admin/staff/{staff_id}/deactivate", web.form_handler(deactivate),
          methods=["POST"]),
    Route("/admin/staff/{staff_id}/reset-password", web.form_handler(reset_password),
          methods=["POST"]),
]
NAV = [web.NavItem("/admin/staff", N_("Staff accounts"), frozenset({ADMIN}))]
