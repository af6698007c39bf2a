"""The server bootstrap: health, reflection, audit, internal errors, graceful stop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from branch.common.v1 import audit_pb2, audit_pb2_grpc
from branch.directory.v1 import client_pb2
from branch.directory.v1 import directory_service_pb2 as api
from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceStub
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from services.common.auth import Principal
from services.directory import service as directory_service
from services.directory.server import SPEC
from tests.directory.factories import client_msg
from tests.harness import ADMIN, SUPERVISOR, auth, channel, make_settings, rpc_status_of, running


async def test_health_reflection_and_audit(tmp_path: Path, nats_url: str) -> None:
    async with running(SPEC, make_settings(tmp_path, nats_url)) as runner:
        async with channel(runner) as ch:
            health = health_pb2_grpc.HealthStub(ch)
            for name in ("", "branch.directory.v1.DirectoryService"):
                resp = await health.Check(health_pb2.HealthCheckRequest(service=name))
                assert resp.status == health_pb2.HealthCheckResponse.SERVING

            # types-grpcio-reflection types the stub for the blocking API only; on a grpc.aio
            # channel it is the asynchronous one, as the generated code is for every service
            refl = reflection_pb2_grpc.ServerReflectionStub(ch)  # type: ignore[arg-type]

            async def one() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
                yield reflection_pb2.ServerReflectionRequest(list_services="")
            names = set()
            # the same stub imports its Incomplete from binascii (a stub bug): the attribute
            # reads as an exception class
            async for resp in refl.ServerReflectionInfo(one()):  # type: ignore[operator]
                names = {s.name for s in resp.list_services_response.service}
            assert {"branch.directory.v1.DirectoryService", "branch.common.v1.AuditService",
                    "grpc.health.v1.Health"} <= names

            stub = DirectoryServiceStub(ch)
            created = await stub.CreateClient(api.CreateClientRequest(
                client=client_msg(), request_id="audit-1"), metadata=ADMIN)
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.CreateClient(api.CreateClientRequest(client=client_msg(
                    account_no="")), metadata=ADMIN)
            await stub.GetClient(api.GetClientRequest(id=created.id), metadata=ADMIN)
            audit = audit_pb2_grpc.AuditServiceStub(ch)
            records = await audit.ListAuditRecords(audit_pb2.ListAuditRecordsRequest(
                method="CreateClient"), metadata=SUPERVISOR)
            outcomes = [(r.outcome, r.resource, r.request_id) for r in records.audit_records]
            assert outcomes == [("INVALID_ARGUMENT", "", ""), ("OK", created.id, "audit-1")]
            reads = await audit.ListAuditRecords(audit_pb2.ListAuditRecordsRequest(
                method="GetClient"), metadata=SUPERVISOR)
            assert list(reads.audit_records) == []  # reads are logged, not audited
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await audit.ListAuditRecords(audit_pb2.ListAuditRecordsRequest(),
                                             metadata=auth("b", "broker"))
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
            # a refused attempt at a mutating call is on the record too
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.ChangeClientTier(api.ChangeClientTierRequest(
                    id=created.id, tier=client_pb2.Tier.ValueType(2)), metadata=auth("broker-9", "broker"))
            refused = await audit.ListAuditRecords(audit_pb2.ListAuditRecordsRequest(
                staff_id="broker-9"), metadata=SUPERVISOR)
            assert [(r.method, r.outcome, r.resource) for r in refused.audit_records] == [
                ("ChangeClientTier", "PERMISSION_DENIED", created.id)]
        await runner.stop(grace=1)
        resp_status = None
        async with channel(runner) as ch:
            try:
                await health_pb2_grpc.HealthStub(ch).Check(
                    health_pb2.HealthCheckRequest(), timeout=1)
            except grpc.aio.AioRpcError as err:
                resp_status = err.code()
        assert resp_status == grpc.StatusCode.UNAVAILABLE


async def test_a_create_and_its_audit_record_commit_in_one_transaction(
        tmp_path: Path, nats_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from services.common.db import Database

    async with running(SPEC, make_settings(tmp_path, nats_url)) as runner:
        runner.relay.stop()  # its mark-sent transactions are not the call's
        await asyncio.sleep(0)
        opened: list[str] = []
        real, real_write = Database.transaction, Database.write

        def counting(self):  # type: ignore[no-untyped-def]
            opened.append("tx")
            return real(self)

        def counting_write(self, work):  # type: ignore[no-untyped-def]
            opened.append("write")
            return real_write(self, work)

        monkeypatch.setattr(Database, "transaction", counting)
        monkeypatch.setattr(Database, "write", counting_write)
        async with channel(runner) as ch:
            created = await DirectoryServiceStub(ch).CreateClient(
                api.CreateClientRequest(client=client_msg()), metadata=ADMIN)
            # one transaction (CreateClient's Database.write), none of the interceptor's
            assert opened == ["write"]
            records = await audit_pb2_grpc.AuditServiceStub(ch).ListAuditRecords(
                audit_pb2.ListAuditRecordsRequest(method="CreateClient"), metadata=SUPERVISOR)
        assert [(r.outcome, r.resource) for r in records.audit_records] == [("OK", created.id)]


async def test_our_bug_is_internal_without_details(tmp_path: Path, nats_url: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    async def boom(self: directory_service.Directory, principal: Principal,
                   client_id: str) -> client_pb2.Client:
        raise ZeroDivisionError("secret detail")

    monkeypatch.setattr(directory_service.Directory, "get_client", boom)
    async with running(SPEC, make_settings(tmp_path, nats_url)) as runner:
        async with channel(runner) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await DirectoryServiceStub(ch).GetClient(api.GetClientRequest(id="x"),
                                                         metadata=ADMIN)
    assert err.value.code() == grpc.StatusCode.INTERNAL
    assert "secret" not in (err.value.details() or "") and "ref" in (err.value.details() or "")
    # beside the English, the same in Chinese for staff whose client asks for zh-CN
    from google.rpc import error_details_pb2

    zh = error_details_pb2.LocalizedMessage()
    status = rpc_status_of(err.value)
    assert status is not None and any(d.Unpack(zh) for d in status.details)
    assert zh.locale == "zh-CN" and zh.message.startswith("服务内部错误") and "secret" not in zh.message


async def test_in_flight_call_finishes_during_graceful_stop(tmp_path: Path, nats_url: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    original = directory_service.Directory.get_client

    async def slow(self: directory_service.Directory, principal: Principal,
                   client_id: str) -> client_pb2.Client:
        await asyncio.sleep(0.5)
        return await original(self, principal, client_id)

    monkeypatch.setattr(directory_service.Directory, "get_client", slow)
    async with running(SPEC, make_settings(tmp_path, nats_url)) as runner:
        async with channel(runner) as ch:
            stub = DirectoryServiceStub(ch)
            created = await stub.CreateClient(api.CreateClientRequest(client=client_msg()),
                                              metadata=ADMIN)
            call = asyncio.ensure_future(stub.GetClient(api.GetClientRequest(id=created.id),
                                                        metadata=ADMIN))
            await asyncio.sleep(0.1)
            await runner.stop(grace=5)
            got = await call
            assert got.id == created.id


async def test_replicas_starting_together_seed_once(tmp_path: Path, nats_url: str,
                                                    database_url: str) -> None:
    """Two replicas migrate and seed the same database at the same moment; both come up and
    the seeded row (the bootstrap admin) exists once."""
    from services.common.server import ServiceRunner

    settings = make_settings(tmp_path, nats_url, database_url)
    runners = [ServiceRunner(SPEC, settings, port=0) for _ in range(3)]
    try:
        await asyncio.gather(*(r.start() for r in runners))
        async with channel(runners[1]) as ch:
            admins = await DirectoryServiceStub(ch).ListStaff(
                api.ListStaffRequest(), metadata=ADMIN)
        assert [s.employee_no for s in admins.staff] == ["ADMIN"]
    finally:
        await asyncio.gather(*(r.stop(grace=1) for r in runners), return_exceptions=True)
