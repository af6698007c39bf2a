"""SearchClients and SearchStaff: names, pinyin initials, phones in any spacing, account and
employee numbers, id prefixes; scoped as ListClients; on SQLite (FTS5) and PostgreSQL
(pg_trgm)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from branch.directory.v1 import client_pb2
from branch.directory.v1 import directory_service_pb2 as api
from branch.directory.v1 import search_pb2 as spb
from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceStub
from google.protobuf.field_mask_pb2 import FieldMask

from services.directory.server import SPEC
from tests.directory.factories import make_client, make_staff
from tests.harness import ADMIN, Metadata, auth, bad_fields, channel, make_settings, running

if TYPE_CHECKING:
    from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceAsyncStub


@pytest.fixture
async def dstub(tmp_path: Path, nats_url: str, database_url: str
                ) -> AsyncIterator[DirectoryServiceAsyncStub]:
    async with running(SPEC, make_settings(tmp_path, nats_url, database_url)) as runner:
        async with channel(runner) as ch:
            yield DirectoryServiceStub(ch)


async def find(stub: DirectoryServiceAsyncStub, query: str, meta: Metadata = ADMIN, **kw: Any) -> list[spb.ClientSearchResult]:
    resp = await stub.SearchClients(spb.SearchClientsRequest(query=query, **kw), metadata=meta)
    return list(resp.results)


async def test_clients_by_name_pinyin_phone_account_and_id(dstub: DirectoryServiceAsyncStub) -> None:
    zhang = await make_client(dstub, display_name="张三", phone="+86 130 8938 4935",
                              account_no="310000123456")
    feng = await make_client(dstub, display_name="张三丰", phone="139-0000-1111",
                             account_no="310000999999")
    li = await make_client(dstub, display_name="Li Ming", phone="0086 137 1234 5678")
    await make_client(dstub, display_name="王五", phone="021 5555 0000")

    # pinyin initials: zs finds 张三 and 张三丰, nobody else
    got = await find(dstub, "zs")
    assert {r.id for r in got} == {zhang.id, feng.id}
    assert {r.match for r in got} == {spb.SEARCH_MATCH_PINYIN}
    # full pinyin, any case and spacing (3+ characters: the trigram index answers)
    assert {r.id for r in await find(dstub, "Zhang San")} == {zhang.id, feng.id}
    assert [r.id for r in await find(dstub, "sanfeng")] == [feng.id]
    # a name: the exact one first
    got = await find(dstub, "张三")
    assert [r.id for r in got] == [zhang.id, feng.id]
    assert got[0].exact and got[0].match == spb.SEARCH_MATCH_NAME and not got[1].exact
    assert [r.id for r in await find(dstub, "ming")] == [li.id]
    assert [r.id for r in await find(dstub, "lm")] == [li.id]

    # phone in any spacing, with or without +86 / 0086
    for typed in ("+86 130 8938 4935", "130 8938 4935", "13089384935", "0086-130-8938-4935",
                  "+8613089384935"):
        got = await find(dstub, typed)
        assert [r.id for r in got] == [zhang.id], typed
        assert got[0].match == spb.SEARCH_MATCH_PHONE and got[0].exact
        assert got[0].phone == "+86 130 8938 4935" and got[0].display_name == "张三"
    assert [r.id for r in await find(dstub, "13712345678")] == [li.id]
    # the last digits of a number
    got = await find(dstub, "4935")
    assert [r.id for r in got] == [zhang.id] and not got[0].exact

    # account number, whole or prefix
    got = await find(dstub, "310000123456")
    assert [r.id for r in got] == [zhang.id]
    assert got[0].match == spb.SEARCH_MATCH_ACCOUNT_NO and got[0].exact
    assert got[0].account_no == "310000123456"
    assert {r.id for r in await find(dstub, "310000")} == {zhang.id, feng.id}

    # id prefix, or the last 8 characters tables show
    assert [r.id for r in await find(dstub, li.id[:30])] == [li.id]
    tail = next(li.id[-k:] for k in range(8, 37) if any(c in "abcdef" for c in li.id[-k:]))
    got = await find(dstub, tail)
    assert [r.id for r in got] == [li.id] and got[0].match == spb.SEARCH_MATCH_ID
    got = await find(dstub, li.id)
    assert got[0].exact

    assert await find(dstub, "nobody-like-this") == []


async def test_paging_and_bad_queries(dstub: DirectoryServiceAsyncStub) -> None:
    ids = {(await make_client(dstub, display_name=f"陈{n}号")).id for n in range(5)}
    seen: list[str] = []
    token = ""
    while True:
        resp = await dstub.SearchClients(spb.SearchClientsRequest(
            query="陈", page_size=2, page_token=token), metadata=ADMIN)
        seen += [r.id for r in resp.results]
        token = resp.next_page_token
        if not token:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == 5
    for bad in ("", "   ", "x" * 101):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await dstub.SearchClients(spb.SearchClientsRequest(query=bad), metadata=ADMIN)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert bad_fields(err.value) == {"query"}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await dstub.SearchStaff(spb.SearchStaffRequest(query="x", page_token="nonsense"),
                                metadata=ADMIN)
    assert bad_fields(err.value) == {"page_token"}


async def test_scope_broker_finds_only_own_and_compliance_sees_masked(dstub: DirectoryServiceAsyncStub) -> None:
    mine_broker = await make_staff(dstub, "broker", display_name="Broker A")
    other_broker = await make_staff(dstub, "broker", display_name="Broker B")
    mine = await make_client(dstub, display_name="赵六", broker_id=mine_broker.id,
                             phone="+86 131 1111 2222")
    theirs = await make_client(dstub, display_name="赵六六", broker_id=other_broker.id)
    got = await find(dstub, "赵六", auth(mine_broker.id, "broker"))
    assert [r.id for r in got] == [mine.id]
    assert got[0].phone == "+86 131 1111 2222"
    assert await find(dstub, theirs.account_no, auth(mine_broker.id, "broker")) == []
    assert await find(dstub, "zl", auth("nobody", "client_manager")) == []
    got = await find(dstub, "赵六", auth("c-1", "compliance"))
    assert {r.id for r in got} == {mine.id, theirs.id}
    assert [r.phone for r in got if r.id == mine.id] == ["131****2222"]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await find(dstub, "赵六", auth("a-1", "analyst"))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_updates_keep_search_current(dstub: DirectoryServiceAsyncStub) -> None:
    c = await make_client(dstub, display_name="孙七七", phone="138 0000 0001")
    await dstub.UpdateClient(api.UpdateClientRequest(
        client=client_pb2.Client(id=c.id, display_name="周八八", phone="+86 138 0000 0002"),
        update_mask=FieldMask(paths=["display_name", "phone"])), metadata=ADMIN)
    assert await find(dstub, "孙七七") == []
    assert await find(dstub, "sunqiqi") == []
    assert await find(dstub, "13800000001") == []
    assert [r.id for r in await find(dstub, "zhoubaba")] == [c.id]
    assert [r.id for r in await find(dstub, "zbb")] == [c.id]
    assert [r.id for r in await find(dstub, "138-0000-0002")] == [c.id]
    # the last digits too (the phone's trigram index follows the update)
    assert await find(dstub, "0000 0001") == []
    assert [r.id for r in await find(dstub, "0000 0002")] == [c.id]


async def test_staff_by_employee_number_name_and_pinyin(dstub: DirectoryServiceAsyncStub) -> None:
    agent = await make_staff(dstub, "service_agent", employee_no="S0017", display_name="刘洋")
    s170 = await make_staff(dstub, "broker", employee_no="S0170", display_name="Liu Yang")
    gone = await make_staff(dstub, "broker", employee_no="S0018", display_name="刘洋洋")
    await dstub.DeactivateStaff(api.DeactivateStaffRequest(id=gone.id), metadata=ADMIN)
    meta = auth("x", "service_agent")

    async def staff(query: str, **kw: Any) -> list[spb.StaffSearchResult]:
        resp = await dstub.SearchStaff(spb.SearchStaffRequest(query=query, **kw), metadata=meta)
        return list(resp.results)

    got = await staff("S0017")
    assert [r.id for r in got] == [agent.id]
    assert got[0].exact and got[0].match == spb.SEARCH_MATCH_EMPLOYEE_NO
    assert [r.id for r in await staff("s0017")] == [agent.id]
    # a prefix is not exact; the deactivated S0018 is left out unless asked for
    got = await staff("S001")
    assert [r.id for r in got] == [agent.id] and not got[0].exact
    assert {r.id for r in await staff("S001", include_inactive=True)} == {agent.id, gone.id}
    assert [r.id for r in await staff("S01")] == [s170.id]
    got = await staff("liuyang")
    assert {r.id for r in got} == {agent.id, s170.id}
    got = await staff("刘洋", include_inactive=True)
    assert [r.id for r in got] == [agent.id, gone.id] and got[0].exact
    assert not got[1].active
    assert [r.id for r in await staff(next(agent.id[-k:] for k in range(6, 37)
                                   if any(c in "abcdef" for c in agent.id[-k:])))] == [agent.id]
