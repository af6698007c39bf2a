from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import grpc
import pytest
from branch.directory.v1 import client_pb2
from branch.directory.v1 import directory_service_pb2 as dapi
from branch.remote.v1 import campaign_pb2 as cpb
from branch.remote.v1 import remote_service_pb2 as api

from services.common.protos import ts
from services.remote.server import SPEC as REMOTE
from tests.harness import ADMIN, SUPERVISOR, auth, bad_fields, collect_events, eventually, running
from tests.remote.conftest import Env


def campaign(agents: list[str], **kw: Any) -> cpb.Campaign:
    base: dict[str, Any] = dict(name="Spring check-in", purpose="ask about service",
                kind=cpb.CAMPAIGN_KIND_GENERAL, start_date="2026-03-02",
                end_date="2026-03-31", agent_ids=agents, daily_quota=5,
                max_attempts=3, retry_backoff_minutes=30)
    base.update(kw)
    return cpb.Campaign(**base)


async def test_create_campaign_targets_standard_remote_clients(env: Env, nats_url: str) -> None:
    agent, _ = await env.agent()
    remote = [await env.client() for _ in range(3)]
    await env.client(channel=client_pb2.CHANNEL_ONSITE)
    await env.client(tier=client_pb2.TIER_KEY)
    made = await env.stub.CreateCampaign(
        api.CreateCampaignRequest(campaign=campaign([agent]), request_id="c1"),
        metadata=SUPERVISOR)
    assert made.state == cpb.CAMPAIGN_STATE_ACTIVE
    assert made.target_count == 3
    again = await env.stub.CreateCampaign(
        api.CreateCampaignRequest(campaign=campaign([agent]), request_id="c1"),
        metadata=SUPERVISOR)
    assert again.id == made.id
    targets = await env.stub.ListTargets(api.ListTargetsRequest(campaign_id=made.id),
                                         metadata=SUPERVISOR)
    assert {t.client_id for t in targets.targets} == {c.id for c in remote}
    listed = await env.stub.ListCampaigns(api.ListCampaignsRequest(), metadata=SUPERVISOR)
    assert [c.id for c in listed.campaigns] == [made.id]
    got = await env.stub.GetCampaign(api.GetCampaignRequest(id=made.id), metadata=SUPERVISOR)
    assert got.agent_ids == [agent]
    events = await collect_events(nats_url, "branch.remote.campaign.created", count=50,
                                  timeout=2)
    mine = [e for e in events if e.headers["ce-subject"] == made.id]
    assert len(mine) == 1
    from branch.remote.v1 import events_pb2

    created = events_pb2.CampaignCreated.FromString(mine[0].data)
    # what the insight service's performance targets are built from
    assert (created.daily_quota, created.start_date, created.end_date) == (
        made.daily_quota, made.start_date, made.end_date)


async def test_campaign_rules_concentration_and_risk(env: Env) -> None:
    agent, _ = await env.agent()
    concentrated = await env.client(tolerance=2)
    spread = await env.client(tolerance=5)

    async def records() -> AsyncIterator[dapi.ImportTradesRequest]:
        from branch.directory.v1 import holding_pb2
        yield dapi.ImportTradesRequest(security=holding_pb2.Security(
            ticker="600001", name="Risky", risk_level=client_pb2.RiskLevel.ValueType(4), last_price="10"))
        yield dapi.ImportTradesRequest(security=holding_pb2.Security(
            ticker="600002", name="Safe", risk_level=client_pb2.RiskLevel.ValueType(1), last_price="10"))
        for cid, qty in ((concentrated.id, (900, 100)), (spread.id, (500, 500))):
            yield dapi.ImportTradesRequest(holding=dapi.HoldingSnapshot(
                client_id=cid, ticker="600001", quantity=qty[0], cost_price="10",
                market_price="10", as_of="2026-02-27"))
            yield dapi.ImportTradesRequest(holding=dapi.HoldingSnapshot(
                client_id=cid, ticker="600002", quantity=qty[1], cost_price="10",
                market_price="10", as_of="2026-02-27"))

    result = await env.dir.ImportTrades(records(), metadata=ADMIN)
    assert result.rejected == 0
    made = await env.stub.CreateCampaign(api.CreateCampaignRequest(campaign=campaign(
        [agent], rule=cpb.TargetRule(min_concentration="0.8"))), metadata=SUPERVISOR)
    targets = await env.stub.ListTargets(api.ListTargetsRequest(campaign_id=made.id),
                                         metadata=SUPERVISOR)
    assert [t.client_id for t in targets.targets] == [concentrated.id]
    risky = await env.stub.CreateCampaign(api.CreateCampaignRequest(campaign=campaign(
        [agent], rule=cpb.TargetRule(risk_mismatch_only=True))), metadata=SUPERVISOR)
    targets = await env.stub.ListTargets(api.ListTargetsRequest(campaign_id=risky.id),
                                         metadata=SUPERVISOR)
    assert [t.client_id for t in targets.targets] == [concentrated.id]


async def test_create_campaign_bad_fields(env: Env) -> None:
    bad = cpb.Campaign(name="", kind=cpb.CampaignKind.ValueType(0), start_date="2026-13-01", end_date="x", agent_ids=[],
                       daily_quota=0, max_attempts=11, retry_backoff_minutes=-1,
                       rule=cpb.TargetRule(not_contacted_days=-1, min_concentration="abc",
                                           risk_tolerances=[client_pb2.RiskTolerance.ValueType(9)], max_targets=-1))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.CreateCampaign(api.CreateCampaignRequest(campaign=bad),
                                      metadata=SUPERVISOR)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_fields(err.value) == {
        "campaign.name", "campaign.kind", "campaign.start_date", "campaign.end_date",
        "campaign.agent_ids", "campaign.daily_quota", "campaign.max_attempts",
        "campaign.retry_backoff_minutes", "campaign.rule.not_contacted_days",
        "campaign.rule.min_concentration", "campaign.rule.risk_tolerances",
        "campaign.rule.max_targets"}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.CreateCampaign(api.CreateCampaignRequest(
            campaign=campaign(["nobody"])), metadata=SUPERVISOR)
    assert bad_fields(err.value) == {"campaign.agent_ids"}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.CreateCampaign(api.CreateCampaignRequest(
            campaign=campaign(["x"], start_date="2026-03-10", end_date="2026-03-01")),
            metadata=SUPERVISOR)
    assert "campaign.end_date" in bad_fields(err.value)


async def test_campaign_roles_and_tokens(env: Env) -> None:
    agent, agent_md = await env.agent()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.CreateCampaign(api.CreateCampaignRequest(campaign=campaign([agent])),
                                      metadata=agent_md)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.ListCampaigns(api.ListCampaignsRequest())
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.ListCampaigns(api.ListCampaignsRequest(),
                                     metadata=auth("b1", "broker"))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    await env.client()
    made = await env.stub.CreateCampaign(api.CreateCampaignRequest(campaign=campaign([agent])),
                                         metadata=SUPERVISOR)
    other, other_md = await env.agent()
    # scope: an agent not on the campaign neither sees it nor pulls from it
    for call in (env.stub.GetCampaign(api.GetCampaignRequest(id=made.id), metadata=other_md),
                 env.stub.NextCallback(api.NextCallbackRequest(campaign_id=made.id),
                                       metadata=other_md)):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert not (await env.stub.ListCampaigns(api.ListCampaignsRequest(),
                                             metadata=other_md)).campaigns
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.ListCallbacks(api.ListCallbacksRequest(agent_id=agent),
                                     metadata=other_md)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.GetCampaign(api.GetCampaignRequest(id="nope"), metadata=SUPERVISOR)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_outcomes_retries_backoff_and_quota(env: Env, nats_url: str) -> None:
    agent, md = await env.agent()
    client = await env.client()
    made = await env.stub.CreateCampaign(api.CreateCampaignRequest(campaign=campaign(
        [agent], max_attempts=2, retry_backoff_minutes=30)), metadata=SUPERVISOR)
    nxt = await env.stub.NextCallback(api.NextCallbackRequest(), metadata=md)
    assert nxt.target.client_id == client.id and nxt.client_phone == "13800000000"
    assert nxt.target.state == cpb.TARGET_STATE_CLAIMED
    # asking again hands back the same claim
    again = await env.stub.NextCallback(api.NextCallbackRequest(), metadata=md)
    assert again.target.id == nxt.target.id
    rec = await env.stub.RecordCallback(api.RecordCallbackRequest(
        target_id=nxt.target.id, outcome=cpb.CALLBACK_OUTCOME_NO_ANSWER, request_id="r1"),
        metadata=md)
    retry = await env.stub.RecordCallback(api.RecordCallbackRequest(
        target_id=nxt.target.id, outcome=cpb.CALLBACK_OUTCOME_NO_ANSWER, request_id="r1"),
        metadata=md)
    assert retry.id == rec.id
    # back-off: nothing due for 30 minutes
    assert not (await env.stub.NextCallback(api.NextCallbackRequest(), metadata=md)).target.id
    env.clock.advance(minutes=29)
    assert not (await env.stub.NextCallback(api.NextCallbackRequest(), metadata=md)).target.id
    env.clock.advance(minutes=1)
    nxt = await env.stub.NextCallback(api.NextCallbackRequest(), metadata=md)
    assert nxt.target.attempts == 1
    # the client asks for a call tomorrow: a requested time, not an attempt
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.RecordCallback(api.RecordCallbackRequest(
            target_id=nxt.target.id, outcome=cpb.CALLBACK_OUTCOME_CALL_BACK_LATER),
            metadata=md)
    assert bad_fields(err.value) == {"callback_time"}
    later = env.clock.now() + timedelta(days=1)
    await env.stub.RecordCallback(api.RecordCallbackRequest(
        target_id=nxt.target.id, outcome=cpb.CALLBACK_OUTCOME_CALL_BACK_LATER,
        callback_time=ts(later)), metadata=md)
    env.clock.advance(hours=23)
    assert not (await env.stub.NextCallback(api.NextCallbackRequest(), metadata=md)).target.id
    env.clock.advance(hours=1)
    nxt = await env.stub.NextCallback(api.NextCallbackRequest(), metadata=md)
    await env.stub.RecordCallback(api.RecordCallbackRequest(
        target_id=nxt.target.id, outcome=cpb.CALLBACK_OUTCOME_NO_ANSWER), metadata=md)
    targets = await env.stub.ListTargets(api.ListTargetsRequest(campaign_id=made.id),
                                         metadata=SUPERVISOR)
    assert targets.targets[0].state == cpb.TARGET_STATE_EXHAUSTED
    assert targets.targets[0].attempts == 2
    progress = await env.stub.GetCampaignProgress(api.GetCampaignProgressRequest(id=made.id),
                                                  metadata=SUPERVISOR)
    assert progress.exhausted == 1 and progress.targets == 1
    assert progress.agents[0].made_total == 3 and progress.agents[0].daily_quota == 5
    assert progress.agents[0].made_today == 1  # a day has passed
    calls = await env.stub.ListCallbacks(api.ListCallbacksRequest(campaign_id=made.id),
                                         metadata=md)
    assert len(calls.callbacks) == 3
    events = await collect_events(nats_url, "branch.remote.callback.recorded", count=500,
                                  timeout=2)
    assert sum(e.headers["ce-subject"] == rec.id for e in events) == 1


async def test_record_requires_own_claim_and_valid_fields(env: Env) -> None:
    agent, md = await env.agent()
    other, other_md = await env.agent()
    await env.client()
    await env.stub.CreateCampaign(api.CreateCampaignRequest(
        campaign=campaign([agent, other])), metadata=SUPERVISOR)
    nxt = await env.stub.NextCallback(api.NextCallbackRequest(), metadata=md)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.RecordCallback(api.RecordCallbackRequest(
            target_id=nxt.target.id, outcome=cpb.CALLBACK_OUTCOME_REACHED), metadata=other_md)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.RecordCallback(api.RecordCallbackRequest(), metadata=md)
    assert bad_fields(err.value) == {"target_id", "outcome"}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.RecordCallback(api.RecordCallbackRequest(
            target_id="missing", outcome=cpb.CALLBACK_OUTCOME_REACHED), metadata=md)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    await env.stub.RecordCallback(api.RecordCallbackRequest(
        target_id=nxt.target.id, outcome=cpb.CALLBACK_OUTCOME_REACHED, notes="fine"),
        metadata=md)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.RecordCallback(api.RecordCallbackRequest(
            target_id=nxt.target.id, outcome=cpb.CALLBACK_OUTCOME_REACHED), metadata=md)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    closed = await env.stub.CloseCampaign(api.CloseCampaignRequest(id=nxt.campaign.id),
                                          metadata=SUPERVISOR)
    assert closed.state == cpb.CAMPAIGN_STATE_CLOSED


async def test_lease_expiry_hands_client_to_another_agent(env: Env) -> None:
    a1, md1 = await env.agent()
    a2, md2 = await env.agent()
    await env.client()
    await env.stub.CreateCampaign(api.CreateCampaignRequest(campaign=campaign([a1, a2])),
                                  metadata=SUPERVISOR)
    first = await env.stub.NextCallback(api.NextCallbackRequest(), metadata=md1)
    assert first.target.id
    assert not (await env.stub.NextCallback(api.NextCallbackRequest(), metadata=md2)).target.id
    env.clock.advance(minutes=16)
    second = await env.stub.NextCallback(api.NextCallbackRequest(), metadata=md2)
    assert second.target.id == first.target.id and second.target.claimed_by == a2


async def test_one_client_in_two_campaigns_is_never_called_twice_at_once(env: Env) -> None:
    a1, md1 = await env.agent()
    a2, md2 = await env.agent()
    await env.client()
    await env.stub.CreateCampaign(api.CreateCampaignRequest(campaign=campaign([a1])),
                                  metadata=SUPERVISOR)
    await env.stub.CreateCampaign(api.CreateCampaignRequest(campaign=campaign([a2])),
                                  metadata=SUPERVISOR)
    first = await env.stub.NextCallback(api.NextCallbackRequest(), metadata=md1)
    assert first.target.id
    second = await env.stub.NextCallback(api.NextCallbackRequest(), metadata=md2)
    assert not second.target.id


@pytest.mark.parametrize("replicas", [2])
async def test_two_replicas_never_hand_one_client_to_two_agents(env_db: Env, replicas: int) -> None:
    env = env_db
    agents = [await env.agent() for _ in range(6)]
    clients = [await env.client() for _ in range(4)]
    await env.stub.CreateCampaign(api.CreateCampaignRequest(
        campaign=campaign([a for a, _ in agents])), metadata=SUPERVISOR)
    async with running(REMOTE, env.settings, clock=env.clock, run_consumers=False) as second:
        stubs = [env.stub, env.remote_stub(second)]
        results = await asyncio.gather(*[
            stubs[i % 2].NextCallback(api.NextCallbackRequest(), metadata=md)
            for i, (_, md) in enumerate(agents)])
    got = [r.target.client_id for r in results if r.target.id]
    assert len(got) == len(clients)
    assert len(set(got)) == len(got)


async def test_key_client_leaves_general_campaigns(env: Env) -> None:
    agent, md = await env.agent()
    client = await env.client()
    made = await env.stub.CreateCampaign(api.CreateCampaignRequest(campaign=campaign([agent])),
                                         metadata=SUPERVISOR)
    await env.dir.ChangeClientTier(dapi.ChangeClientTierRequest(
        id=client.id, tier=client_pb2.TIER_KEY, reason="pays for VIP"), metadata=SUPERVISOR)

    async def removed() -> bool:
        t = await env.stub.ListTargets(api.ListTargetsRequest(campaign_id=made.id),
                                       metadata=SUPERVISOR)
        return t.targets[0].state == cpb.TARGET_STATE_REMOVED

    await eventually(removed)
    assert not (await env.stub.NextCallback(api.NextCallbackRequest(), metadata=md)).target.id
    # a redelivered tier event is applied once: the consumer records its id
    consumer = next(c for c in env.remote.consumers if c.durable.endswith("directory-clients"))
    assert consumer.handled >= 1


async def test_channel_change_event_removes_target(env: Env) -> None:
    from google.protobuf.field_mask_pb2 import FieldMask

    agent, _ = await env.agent()
    client = await env.client()
    made = await env.stub.CreateCampaign(api.CreateCampaignRequest(campaign=campaign([agent])),
                                         metadata=SUPERVISOR)
    await env.dir.UpdateClient(dapi.UpdateClientRequest(
        client=client_pb2.Client(id=client.id, channel=client_pb2.CHANNEL_ONSITE),
        update_mask=FieldMask(paths=["channel"])), metadata=SUPERVISOR)

    async def removed() -> str:
        t = await env.stub.ListTargets(api.ListTargetsRequest(campaign_id=made.id),
                                       metadata=SUPERVISOR)
        return t.targets[0].removed_reason

    assert await eventually(removed) == "no longer a remote client"


async def test_quota_missed_raised_once_per_agent_and_day(env_db: Env, nats_url: str) -> None:
    from services.remote.server import check_quotas

    env = env_db
    a1, md1 = await env.agent()
    a2, _ = await env.agent()
    for _ in range(3):
        await env.client()
    made = await env.stub.CreateCampaign(api.CreateCampaignRequest(campaign=campaign(
        [a1, a2], daily_quota=2)), metadata=SUPERVISOR)
    for _ in range(2):  # a1 meets the quota on Monday, a2 makes no call
        nxt = await env.stub.NextCallback(api.NextCallbackRequest(), metadata=md1)
        await env.stub.RecordCallback(api.RecordCallbackRequest(
            target_id=nxt.target.id, outcome=cpb.CALLBACK_OUTCOME_REACHED), metadata=md1)
    assert await check_quotas(env.remote.ctx) == 0  # today is not over
    env.clock.advance(days=1)
    async with running(REMOTE, env.settings, clock=env.clock, run_consumers=False) as second:
        counts = await asyncio.gather(check_quotas(env.remote.ctx), check_quotas(second.ctx))
    assert sum(counts) == 1
    env.clock.advance(days=5)  # Sunday 8 March: Tue..Fri missed by both, the weekend is not
    assert await check_quotas(env.remote.ctx) == 8
    assert await check_quotas(env.remote.ctx) == 0
    progress = await env.stub.GetCampaignProgress(api.GetCampaignProgressRequest(id=made.id),
                                                  metadata=SUPERVISOR)
    missed = {a.agent_id: a.quota_missed_days for a in progress.agents}
    assert missed == {a1: 4, a2: 5}
    msgs = await collect_events(nats_url, "branch.remote.callback.quota_missed", count=1000,
                                timeout=2)
    assert sum(m.headers["ce-subject"] == made.id for m in msgs) == 9
