"""Sign-in at the directory: passwords (argon2id), lockout without user enumeration, forced
changes, refresh and logout, role changes, service credentials, and keys that survive a
restart."""

from __future__ import annotations

import json
from collections.abc import Awaitable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import jwt
import pytest
from branch.directory.v1 import directory_service_pb2 as api
from branch.directory.v1 import identity_pb2 as iapi
from branch.directory.v1 import staff_pb2
from branch.directory.v1.identity_pb2_grpc import IdentityServiceStub
from sqlmodel import select

from services.common.models import AuditRecord
from services.directory.models import Credential
from services.directory.server import SPEC
from tests.directory.factories import ROLE, make_staff
from tests.harness import ADMIN, bad_fields, channel, eventually, make_settings, running

if TYPE_CHECKING:
    from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceAsyncStub
    from branch.directory.v1.identity_pb2_grpc import IdentityServiceAsyncStub

PASSWORD = "correct-horse-1"


async def signed_up(stub: DirectoryServiceAsyncStub, identity: IdentityServiceAsyncStub,
                    *roles: str) -> staff_pb2.Staff:
    staff = await make_staff(stub, *roles)
    reset = await identity.ResetPassword(iapi.ResetPasswordRequest(staff_id=staff.id),
                                         metadata=ADMIN)
    await identity.ChangePassword(iapi.ChangePasswordRequest(
        employee_no=staff.employee_no, password=reset.temporary_password,
        new_password=PASSWORD))
    return staff


async def code(call: Awaitable[Any]) -> tuple[grpc.StatusCode, str]:
    try:
        await call
    except grpc.aio.AioRpcError as err:
        return err.code(), err.details() or ""
    return grpc.StatusCode.OK, ""


async def test_lockout_is_audited_and_never_tells_who_exists(tmp_path: Path, nats_url: str) -> None:
    settings = make_settings(tmp_path, nats_url, login_max_failures=3)
    async with running(SPEC, settings) as d, channel(d) as ch:
        from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceStub

        stub, identity = DirectoryServiceStub(ch), IdentityServiceStub(ch)
        staff = await signed_up(stub, identity, "broker")
        login = identity.Login
        unknown = await code(login(iapi.LoginRequest(employee_no="NOBODY", password="x" * 12)))
        wrong = await code(login(iapi.LoginRequest(employee_no=staff.employee_no,
                                                   password="x" * 12)))
        assert unknown == wrong and unknown[0] == grpc.StatusCode.UNAUTHENTICATED
        for _ in range(2):  # the third failure locks
            await code(login(iapi.LoginRequest(employee_no=staff.employee_no, password="nope")))
        locked = await code(login(iapi.LoginRequest(employee_no=staff.employee_no,
                                                    password=PASSWORD)))
        assert locked == unknown  # even the right password, worded as any failure
        async with d.db.read() as session:
            outcomes = [r.outcome for r in (await session.exec(
                select(AuditRecord).where(AuditRecord.staff_id == staff.id,
                                          AuditRecord.method == "Login"))).all()]
        assert outcomes.count("WRONG_PASSWORD") == 2 and "LOCKED_OUT" in outcomes
        assert "LOCKED" in outcomes
        # an admin reset lifts the lockout and forces a change at the next sign-in
        reset = await identity.ResetPassword(iapi.ResetPasswordRequest(staff_id=staff.id),
                                             metadata=ADMIN)
        forced = await code(login(iapi.LoginRequest(employee_no=staff.employee_no,
                                                     password=reset.temporary_password)))
        assert forced[0] == grpc.StatusCode.FAILED_PRECONDITION
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await identity.ChangePassword(iapi.ChangePasswordRequest(
                employee_no=staff.employee_no, password=reset.temporary_password,
                new_password="short"))
        assert bad_fields(err.value) == {"new_password"}
        await identity.ChangePassword(iapi.ChangePasswordRequest(
            employee_no=staff.employee_no, password=reset.temporary_password,
            new_password="a-new-password-2"))
        signed = await login(iapi.LoginRequest(employee_no=staff.employee_no,
                                               password="a-new-password-2"))
        assert signed.roles == ["broker"] and signed.staff_id == staff.id
        async with d.db.read() as session:
            cred = await session.get(Credential, staff.id)
        assert cred is not None and cred.password_hash.startswith("$argon2id$")
        assert "a-new-password-2" not in cred.password_hash


async def test_refresh_logout_and_roles(tmp_path: Path, nats_url: str,
                                        database_url: str) -> None:
    async with running(SPEC, make_settings(tmp_path, nats_url, database_url)) as d, \
            channel(d) as ch:
        from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceStub

        stub, identity = DirectoryServiceStub(ch), IdentityServiceStub(ch)
        staff = await signed_up(stub, identity, "broker", "analyst")
        signed = await identity.Login(iapi.LoginRequest(employee_no=staff.employee_no,
                                                        password=PASSWORD))
        claims = jwt.decode(signed.access_token, options={"verify_signature": False})
        assert claims["exp"] - claims["iat"] == 600 and sorted(claims["roles"]) == \
            ["analyst", "broker"]
        changed = await identity.SetStaffRoles(iapi.SetStaffRolesRequest(
            staff_id=staff.id, roles=[ROLE["analyst"]]), metadata=ADMIN)
        assert list(changed.roles) == [ROLE["analyst"]]
        fresh = await identity.RefreshToken(iapi.RefreshTokenRequest(
            refresh_token=signed.refresh_token))
        assert list(fresh.roles) == ["analyst"]
        await identity.Logout(iapi.LogoutRequest(refresh_token=fresh.refresh_token))
        assert (await code(identity.RefreshToken(iapi.RefreshTokenRequest(
            refresh_token=fresh.refresh_token))))[0] == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await identity.SetStaffRoles(iapi.SetStaffRolesRequest(staff_id=staff.id),
                                         metadata=ADMIN)
        assert bad_fields(err.value) == {"roles"}
        broker = [("authorization", f"Bearer {signed.access_token}")]
        assert (await code(identity.SetStaffRoles(iapi.SetStaffRolesRequest(
            staff_id=staff.id, roles=[ROLE["admin"]]), metadata=broker)))[0] == \
            grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await identity.IssueServiceToken(iapi.IssueServiceTokenRequest(service="mallory"))
        assert bad_fields(err.value) == {"service", "credential"}


async def test_keys_and_bootstrap_admin_survive_a_restart(tmp_path: Path, nats_url: str) -> None:
    settings = make_settings(tmp_path, nats_url, admin_password="first-admin-pass")
    kids = []
    for _ in range(2):
        async with running(SPEC, settings) as d, channel(d) as ch:
            identity = IdentityServiceStub(ch)
            doc = json.loads((await identity.ListSigningKeys(iapi.ListSigningKeysRequest())).jwks)
            assert [k["kty"] for k in doc["keys"]] == ["OKP"]
            assert set(doc["keys"][0]) == {"kty", "crv", "x", "kid", "alg", "use"}
            kids.append(doc["keys"][0]["kid"])
            forced = await code(identity.Login(iapi.LoginRequest(
                employee_no="ADMIN", password="first-admin-pass")))
            assert forced[0] == grpc.StatusCode.FAILED_PRECONDITION
    assert kids[0] == kids[1]
    assert not (tmp_path / "admin.password").exists()  # set by the environment instead


async def test_a_wiped_standing_bucket_is_written_again(tmp_path: Path) -> None:
    """NATS storage lost: the directory writes every member's standing again at start, so a
    deactivated member stays refused everywhere."""
    import nats

    from services.common.nats_link import EmbeddedNats
    from services.common.standing import BUCKET

    server = EmbeddedNats(tmp_path / "nats")
    server.start()
    try:
        settings = make_settings(tmp_path, server.url)
        async with running(SPEC, settings) as d, channel(d) as ch:
            from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceStub

            stub = DirectoryServiceStub(ch)
            gone = await make_staff(stub, "broker")
            await stub.DeactivateStaff(api.DeactivateStaffRequest(id=gone.id), metadata=ADMIN)
        nc = await nats.connect(server.url)
        try:
            await nc.jetstream().delete_key_value(BUCKET)
        finally:
            await nc.close()
        async with running(SPEC, settings) as d:
            async def refused() -> bool:
                standing = d.standing.get(gone.id)
                return standing is not None and not standing.active

            await eventually(refused)
    finally:
        server.stop()
