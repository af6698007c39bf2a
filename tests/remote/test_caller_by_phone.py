"""A call from a known client's number identifies the client, however the number is typed."""

from __future__ import annotations

from branch.directory.v1 import client_pb2
from branch.directory.v1 import directory_service_pb2 as dapi

from tests.harness import ADMIN, unique
from tests.remote.conftest import Env
from tests.remote.test_tickets import on_duty, open_ticket


async def _client(env: Env, phone: str) -> client_pb2.Client:
    return await env.dir.CreateClient(dapi.CreateClientRequest(client=client_pb2.Client(
        account_no=unique("A"), display_name="张三", phone=phone,
        channel=client_pb2.CHANNEL_REMOTE, tier=client_pb2.TIER_KEY,
        risk_tolerance=client_pb2.RISK_TOLERANCE_C3, risk_assessed_on="2025-06-01",
        commission_rate="0.00025")), metadata=ADMIN)


async def test_caller_identified_by_normalised_phone(env: Env) -> None:
    _, md = await on_duty(env)
    known = await _client(env, "13089384935")
    for typed in ("+86 130 8938 4935", "130-8938-4935", "0086 13089384935"):
        t = await open_ticket(env, md, caller_phone=typed)
        assert t.client_id == known.id and t.client_tier == client_pb2.TIER_KEY, typed
    # an unknown number, a number two clients share, or only its last digits: unidentified
    await _client(env, "+86 137 0000 0001")
    await _client(env, "137 0000 0001")
    for typed in ("+86 139 0000 0000", "13700000001", "8938 4935"):
        t = await open_ticket(env, md, caller_phone=typed)
        assert t.client_id == "" and t.client_tier == 0, typed
    # a client named explicitly wins over the phone
    other = await _client(env, "13500000000")
    t = await open_ticket(env, md, caller_phone="13089384935", client_id=other.id)
    assert t.client_id == other.id
