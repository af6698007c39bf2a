"""The identity attack matrix, against all five services running together on one NATS
server, each trusting only the directory's keys and calling its peers with tokens the
directory issued (the production path; the harness signs nothing here).

Prints the measured time from DeactivateStaff to refusal on each service (run with -s)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from branch.directory.v1 import directory_service_pb2 as dapi
from branch.directory.v1 import directory_service_pb2_grpc as dgrpc
from branch.directory.v1 import identity_pb2 as iapi
from branch.directory.v1 import identity_pb2_grpc as igrpc
from branch.directory.v1 import staff_pb2
from branch.onsite.v1 import onsite_service_pb2 as oapi
from branch.onsite.v1 import onsite_service_pb2_grpc as ogrpc
from branch.remote.v1 import remote_service_pb2 as rapi
from branch.remote.v1 import remote_service_pb2_grpc as rgrpc
from branch.research.v1 import research_service_pb2 as sapi
from branch.research.v1 import research_service_pb2_grpc as sgrpc
from branch.vip.v1 import vip_service_pb2 as vapi
from branch.vip.v1 import vip_service_pb2_grpc as vgrpc
from cryptography.hazmat.primitives import serialization

from services import registry
from services.cli.branch import _rotate_signing_key
from services.common.auth import TokenSigner
from services.common.identity import service_credential
from services.common.keys import SigningKey
from services.common.server import ServiceRunner
from tests.harness import SERVICE_KEY, Metadata, eventually, make_settings, running, unique

ORDER = ("directory", "research", "remote", "vip", "onsite")
REFUSED = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}
Probe = Callable[[Metadata], Awaitable[Any]]


@dataclass
class Suite:
    tmp: Path
    settings: Any
    runners: dict[str, ServiceRunner]
    channels: dict[str, grpc.aio.Channel] = field(default_factory=dict)

    @property
    def identity(self) -> igrpc.IdentityServiceAsyncStub:
        return igrpc.IdentityServiceStub(self.channels["directory"])

    @property
    def directory(self) -> dgrpc.DirectoryServiceAsyncStub:
        return dgrpc.DirectoryServiceStub(self.channels["directory"])

    def probes(self, kind: str) -> dict[str, Probe]:
        """One call per service that the given kind of caller may make."""
        d, o = self.directory, ogrpc.OnsiteServiceStub(self.channels["onsite"])
        r = rgrpc.RemoteServiceStub(self.channels["remote"])
        v = vgrpc.VipServiceStub(self.channels["vip"])
        s = sgrpc.ResearchServiceStub(self.channels["research"])
        if kind == "supervisor":
            return {
                "directory": lambda md: d.ListClients(dapi.ListClientsRequest(), metadata=md),
                "onsite": lambda md: o.ListConsultationForms(
                    oapi.ListConsultationFormsRequest(), metadata=md),
                "remote": lambda md: r.ListTickets(rapi.ListTicketsRequest(), metadata=md),
                "vip": lambda md: v.ListRoster(vapi.ListRosterRequest(), metadata=md),
                "research": lambda md: s.ListNotes(sapi.ListNotesRequest(), metadata=md),
            }
        if kind == "broker":  # remote answers brokers PERMISSION_DENIED: refused either way
            return {
                "directory": lambda md: d.ListClients(dapi.ListClientsRequest(), metadata=md),
                "onsite": lambda md: o.ListMeetings(oapi.ListMeetingsRequest(), metadata=md),
                "remote": lambda md: r.ListTickets(rapi.ListTicketsRequest(), metadata=md),
                "vip": lambda md: v.GetInbox(vapi.GetInboxRequest(), metadata=md),
                "research": lambda md: s.ListNotes(sapi.ListNotesRequest(), metadata=md),
            }
        if kind == "agent":  # what a service agent may call
            return {
                "directory": lambda md: d.ListStaff(dapi.ListStaffRequest(), metadata=md),
                "onsite": lambda md: o.ListMeetings(oapi.ListMeetingsRequest(), metadata=md),
                "remote": lambda md: r.ListTickets(rapi.ListTicketsRequest(), metadata=md),
                "vip": lambda md: v.ListShifts(vapi.ListShiftsRequest(), metadata=md),
                "research": lambda md: s.ListNotes(sapi.ListNotesRequest(), metadata=md),
            }
        assert kind == "supervisor-only"  # what a supervisor may and an agent may not
        return {
            "directory": lambda md: d.FindClientsByTickers(
                dapi.FindClientsByTickersRequest(tickers=["600519"]), metadata=md),
            "onsite": lambda md: o.ListConsultationForms(
                oapi.ListConsultationFormsRequest(), metadata=md),
            "remote": lambda md: r.GetRegulatoryProgress(
                rapi.GetRegulatoryProgressRequest(), metadata=md),
            "vip": lambda md: v.GetInbox(vapi.GetInboxRequest(), metadata=md),
            "research": lambda md: s.ListReviewQueue(sapi.ListReviewQueueRequest(),
                                                     metadata=md),
        }


@asynccontextmanager
async def five_services(tmp_path: Path, nats_url: str) -> AsyncIterator[Suite]:
    async with AsyncExitStack() as stack:
        runners: dict[str, ServiceRunner] = {}
        addrs: dict[str, str] = {}
        settings = None
        for name in ORDER:
            # trust only the directory's keys: nothing the harness signs is accepted here
            settings = make_settings(tmp_path, nats_url, trusted_keys="",
                                     keys_refresh_seconds=1.0, **addrs)
            spec = registry.spec(name)
            assert spec is not None
            runners[name] = await stack.enter_async_context(
                running(spec, settings, directory_issues_service_tokens=True))
            addrs[f"{name}_addr"] = f"127.0.0.1:{runners[name].port}"
        suite = Suite(tmp_path, settings, runners)
        for name, runner in runners.items():
            suite.channels[name] = grpc.aio.insecure_channel(f"127.0.0.1:{runner.port}")
        try:
            yield suite
        finally:
            for ch in suite.channels.values():
                await ch.close()


def bearer(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)


async def code_of(probe: Probe, md: Metadata) -> grpc.StatusCode:
    try:
        await probe(md)
    except grpc.aio.AioRpcError as err:
        return err.code()
    return grpc.StatusCode.OK


async def codes(suite: Suite, kind: str, md: Metadata) -> dict[str, grpc.StatusCode]:
    probes = suite.probes(kind)
    found = await asyncio.gather(*(code_of(p, md) for p in probes.values()))
    return dict(zip(probes, found, strict=True))


async def admin_sign_in(suite: Suite) -> iapi.SignInResponse:
    first = (suite.tmp / "admin.password").read_text().strip()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await suite.identity.Login(iapi.LoginRequest(employee_no="ADMIN", password=first))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    await suite.identity.ChangePassword(iapi.ChangePasswordRequest(
        employee_no="ADMIN", password=first, new_password="admin-pass-0001"))
    return await suite.identity.Login(iapi.LoginRequest(employee_no="ADMIN",
                                                        password="admin-pass-0001"))


async def staff_sign_in(suite: Suite, admin: Metadata,
                        *roles: staff_pb2.Role.ValueType) -> tuple[str, str, iapi.SignInResponse]:
    """Create a staff member, reset their password, let them choose one and sign in."""
    staff = await suite.directory.CreateStaff(dapi.CreateStaffRequest(staff=staff_pb2.Staff(
        employee_no=unique("E"), display_name="Staff", roles=list(roles))), metadata=admin)
    reset = await suite.identity.ResetPassword(iapi.ResetPasswordRequest(staff_id=staff.id),
                                               metadata=admin)
    await suite.identity.ChangePassword(iapi.ChangePasswordRequest(
        employee_no=staff.employee_no, password=reset.temporary_password,
        new_password="staff-pass-0001"))
    signed = await suite.identity.Login(iapi.LoginRequest(employee_no=staff.employee_no,
                                                          password="staff-pass-0001"))
    return staff.id, staff.employee_no, signed


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def forgeries(genuine: str, directory_jwks: dict[str, Any]) -> dict[str, str]:
    """Tokens an attacker could make from a genuine one and the public keys."""
    header = jwt.get_unverified_header(genuine)
    claims = jwt.decode(genuine, options={"verify_signature": False})
    escalated = {**claims, "roles": ["admin"]}
    jwk = next(k for k in directory_jwks["keys"] if k["kid"] == header["kid"])
    public = jwt.PyJWK(jwk).key
    pem = public.public_bytes(serialization.Encoding.PEM,
                              serialization.PublicFormat.SubjectPublicKeyInfo)
    raw = base64.urlsafe_b64decode(jwk["x"] + "==")
    out: dict[str, str] = {}
    other = SigningKey.generate()
    out["another key"] = TokenSigner(other).issue(claims["sub"], ["admin"],
                                                  datetime.now(UTC), timedelta(minutes=5))
    out["another key, the directory's key id"] = jwt.encode(
        escalated, other.private, algorithm="EdDSA", headers={"kid": header["kid"]})
    out["alg none"] = _b64(json.dumps({"alg": "none", "kid": header["kid"]}).encode()) + \
        "." + _b64(json.dumps(escalated).encode()) + "."
    for alg, digest in (("HS256", hashlib.sha256), ("HS512", hashlib.sha512)):
        for label, secret in (("PEM", pem), ("raw", raw), ("x", jwk["x"].encode()),
                              ("JWK", json.dumps(jwk).encode())):
            head = _b64(json.dumps({"alg": alg, "typ": "JWT", "kid": header["kid"]}).encode())
            body = _b64(json.dumps(escalated).encode())
            sig = hmac.new(secret, f"{head}.{body}".encode(), digest).digest()
            out[f"{alg} with the public key ({label}) as secret"] = f"{head}.{body}.{_b64(sig)}"
    genuine_head, _, genuine_sig = genuine.split(".")
    out["edited roles"] = f"{genuine_head}.{_b64(json.dumps(escalated).encode())}.{genuine_sig}"
    return out


async def refused_everywhere(suite: Suite, kind: str, md: Metadata,
                             expect: grpc.StatusCode = grpc.StatusCode.UNAUTHENTICATED) -> None:
    found = await codes(suite, kind, md)
    assert set(found.values()) == {expect}, found


async def accepted_everywhere(suite: Suite, kind: str, md: Metadata) -> None:
    found = await codes(suite, kind, md)
    assert not set(found.values()) & REFUSED, found


async def test_attack_matrix_on_all_five_services(tmp_path: Path, nats_url: str) -> None:
    async with five_services(tmp_path, nats_url) as suite:
        admin_in = await admin_sign_in(suite)
        admin = bearer(admin_in.access_token)
        sup_id, _, sup = await staff_sign_in(suite, admin, staff_pb2.ROLE_SUPERVISOR)
        await accepted_everywhere(suite, "supervisor", bearer(sup.access_token))

        # no token, forged and tampered tokens: refused by every service
        await refused_everywhere(suite, "supervisor", ())
        keys = json.loads((await suite.identity.ListSigningKeys(
            iapi.ListSigningKeysRequest())).jwks)
        assert all("d" not in k for k in keys["keys"])  # no private part is published
        for label, forged in forgeries(sup.access_token, keys).items():
            found = await codes(suite, "supervisor", bearer(forged))
            assert set(found.values()) == {grpc.StatusCode.UNAUTHENTICATED}, (label, found)

        # expired: signed by the directory's own key, an hour ago
        signing = suite.runners["directory"].signing
        assert signing is not None
        signer = signing.signer()
        expired = signer.issue(sup_id, ["supervisor"], datetime.now(UTC) - timedelta(hours=1),
                               timedelta(minutes=10))
        await refused_everywhere(suite, "supervisor", bearer(expired))


async def test_deactivation_refused_everywhere_within_seconds(
    tmp_path: Path, nats_url: str
) -> None:
    async with five_services(tmp_path, nats_url) as suite:
        admin = bearer((await admin_sign_in(suite)).access_token)
        figures: dict[str, dict[str, float]] = {}
        for kind, role in (("supervisor", staff_pb2.ROLE_SUPERVISOR),
                           ("broker", staff_pb2.ROLE_BROKER)):
            staff_id, _, signed = await staff_sign_in(suite, admin, role)
            md = bearer(signed.access_token)
            before = await codes(suite, kind, md)
            assert before["directory"] == grpc.StatusCode.OK
            started = time.perf_counter()
            await suite.directory.DeactivateStaff(dapi.DeactivateStaffRequest(id=staff_id),
                                                  metadata=admin)
            figures[kind] = await time_to_refusal(suite, kind, md, started)
            with pytest.raises(grpc.aio.AioRpcError) as err:  # and no new access either
                await suite.identity.RefreshToken(iapi.RefreshTokenRequest(
                    refresh_token=signed.refresh_token))
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        print("\nDeactivateStaff -> refusal (ms):")
        for kind, per in figures.items():
            print(f"  {kind:<10} " + "  ".join(f"{s} {ms:.0f}" for s, ms in per.items()))

        # a restarted service still refuses (the standing bucket is durable)
        staff_id, _, signed = await staff_sign_in(suite, admin, staff_pb2.ROLE_SUPERVISOR)
        await suite.directory.DeactivateStaff(dapi.DeactivateStaffRequest(id=staff_id),
                                              metadata=admin)
        await time_to_refusal(suite, "supervisor", bearer(signed.access_token),
                              time.perf_counter())
        research = suite.runners["research"]
        await research.stop(grace=1)
        again = ServiceRunner(research.spec, research.settings, port=research.port,
                              service_tokens=None)
        await again.start()
        try:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await suite.probes("supervisor")["research"](bearer(signed.access_token))
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        finally:
            await again.stop(grace=1)
            suite.runners["research"] = research
            research.server = None  # already stopped; the exit stack stops it again


async def time_to_refusal(suite: Suite, kind: str, md: Metadata,
                          started: float) -> dict[str, float]:
    async def one(service: str, probe: Probe) -> float:
        deadline = time.perf_counter() + 10
        while time.perf_counter() < deadline:
            if await code_of(probe, md) == grpc.StatusCode.UNAUTHENTICATED:
                return (time.perf_counter() - started) * 1000
            await asyncio.sleep(0.005)
        raise AssertionError(f"{service} still answers {kind} after 10 s")

    probes = suite.probes(kind)
    found = await asyncio.gather(*(one(s, p) for s, p in probes.items()))
    return dict(zip(probes, found, strict=True))


async def test_role_removed_refused_while_the_others_still_work(
    tmp_path: Path, nats_url: str
) -> None:
    async with five_services(tmp_path, nats_url) as suite:
        admin = bearer((await admin_sign_in(suite)).access_token)
        staff_id, _, signed = await staff_sign_in(
            suite, admin, staff_pb2.ROLE_SUPERVISOR, staff_pb2.ROLE_SERVICE_AGENT)
        md = bearer(signed.access_token)
        await accepted_everywhere(suite, "supervisor-only", md)
        await accepted_everywhere(suite, "agent", md)
        await suite.identity.SetStaffRoles(iapi.SetStaffRolesRequest(
            staff_id=staff_id, roles=[staff_pb2.ROLE_SERVICE_AGENT]), metadata=admin)

        async def supervisor_gone() -> bool:
            found = await codes(suite, "supervisor-only", md)
            return set(found.values()) == {grpc.StatusCode.PERMISSION_DENIED}

        await eventually(supervisor_gone, timeout=10)
        await accepted_everywhere(suite, "agent", md)  # the same token, the other role
        # a refreshed token carries the roles held now
        fresh = await suite.identity.RefreshToken(iapi.RefreshTokenRequest(
            refresh_token=signed.refresh_token))
        assert list(fresh.roles) == ["service_agent"]
        await accepted_everywhere(suite, "agent", bearer(fresh.access_token))


async def test_refresh_rotates_and_reuse_revokes_the_family(
    tmp_path: Path, nats_url: str
) -> None:
    async with five_services(tmp_path, nats_url) as suite:
        admin = bearer((await admin_sign_in(suite)).access_token)
        _, _, signed = await staff_sign_in(suite, admin, staff_pb2.ROLE_SUPERVISOR)
        first = signed.refresh_token
        second = await suite.identity.RefreshToken(iapi.RefreshTokenRequest(refresh_token=first))
        assert second.refresh_token != first
        await accepted_everywhere(suite, "supervisor", bearer(second.access_token))
        with pytest.raises(grpc.aio.AioRpcError) as err:  # the spent one, again: a thief
            await suite.identity.RefreshToken(iapi.RefreshTokenRequest(refresh_token=first))
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.aio.AioRpcError) as err:  # the whole family is revoked
            await suite.identity.RefreshToken(iapi.RefreshTokenRequest(
                refresh_token=second.refresh_token))
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "ended" in (err.value.details() or "")


async def test_key_rotated_mid_session_then_old_key_retired(
    tmp_path: Path, nats_url: str
) -> None:
    async with five_services(tmp_path, nats_url) as suite:
        admin_in = await admin_sign_in(suite)
        admin = bearer(admin_in.access_token)
        _, employee_no, before = await staff_sign_in(suite, admin, staff_pb2.ROLE_SUPERVISOR)
        old_md = bearer(before.access_token)
        old_kid = jwt.get_unverified_header(before.access_token)["kid"]
        await accepted_everywhere(suite, "supervisor", old_md)

        await _rotate_signing_key(suite.settings, retire_previous=False)

        async def new_key_signs() -> iapi.SignInResponse | None:
            again = await suite.identity.Login(iapi.LoginRequest(
                employee_no=employee_no, password="staff-pass-0001"))
            kid = jwt.get_unverified_header(again.access_token)["kid"]
            return again if kid != old_kid else None

        after = await eventually(new_key_signs, timeout=10)
        await accepted_everywhere(suite, "supervisor", bearer(after.access_token))
        await accepted_everywhere(suite, "supervisor", old_md)  # mid-session: still fine

        await _rotate_signing_key(suite.settings, retire_previous=True)

        async def old_key_refused() -> bool:
            found = await codes(suite, "supervisor", old_md)
            return set(found.values()) == {grpc.StatusCode.UNAUTHENTICATED}

        await eventually(old_key_refused, timeout=15)
        await accepted_everywhere(suite, "supervisor", bearer(after.access_token))


async def test_services_hold_least_privilege_tokens_only_the_directory_issues(
    tmp_path: Path, nats_url: str
) -> None:
    async with five_services(tmp_path, nats_url) as suite:
        admin = bearer((await admin_sign_in(suite)).access_token)
        staff_id, _, _ = await staff_sign_in(suite, admin, staff_pb2.ROLE_BROKER)
        get_staff = dapi.GetStaffRequest(id=staff_id)
        for name in ("onsite", "remote", "vip", "research"):
            tokens = suite.runners[name].ctx.tokens
            await eventually(lambda t=tokens: t.current())
            claims = jwt.decode(tokens.current(), options={"verify_signature": False})
            assert claims["sub"] == f"svc:{name}"
            assert claims["exp"] - claims["iat"] <= 600  # minutes, not years
            code = await code_of(lambda md: suite.directory.GetStaff(get_staff, metadata=md),
                                 bearer(tokens.current()))
            # research calls no directory method; the others read staff
            assert code == (grpc.StatusCode.PERMISSION_DENIED if name == "research"
                            else grpc.StatusCode.OK), name
            # no service may manage staff or sign-ins
            code = await code_of(lambda md: suite.identity.ResetPassword(
                iapi.ResetPasswordRequest(staff_id=staff_id), metadata=md),
                bearer(tokens.current()))
            assert code == grpc.StatusCode.PERMISSION_DENIED, name
        vip = bearer(suite.runners["vip"].ctx.tokens.current())
        found = await codes(suite, "supervisor", vip)  # vip reads nobody's lists but its own
        assert found["onsite"] == found["remote"] == found["research"] == \
            grpc.StatusCode.PERMISSION_DENIED, found
        # a service token needs the service's own credential
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await suite.identity.IssueServiceToken(iapi.IssueServiceTokenRequest(
                service="vip", credential=service_credential(SERVICE_KEY, "onsite")))
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        ok = await suite.identity.IssueServiceToken(iapi.IssueServiceTokenRequest(
            service="vip", credential=service_credential(SERVICE_KEY, "vip")))
        assert jwt.decode(ok.token, options={"verify_signature": False})["roles"] == \
            ["service", "service:vip"]
