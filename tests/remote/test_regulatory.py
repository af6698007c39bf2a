from __future__ import annotations

import grpc
import pytest
from branch.remote.v1 import campaign_pb2 as cpb
from branch.remote.v1 import remote_service_pb2 as api

from tests.harness import SUPERVISOR, Metadata, auth, eventually
from tests.remote.conftest import Env
from tests.remote.test_campaigns import campaign


async def reach_all(env: Env, md: Metadata) -> int:
    reached = 0
    while True:
        nxt = await env.stub.NextCallback(api.NextCallbackRequest(), metadata=md)
        if not nxt.target.id:
            return reached
        await env.stub.RecordCallback(api.RecordCallbackRequest(
            target_id=nxt.target.id, outcome=cpb.CALLBACK_OUTCOME_REACHED), metadata=md)
        reached += 1


async def test_new_accounts_and_annual_sample(env: Env) -> None:
    agent, md = await env.agent()
    late = await env.client(opened_on="2026-01-05")  # due 2026-02-05, already overdue
    await env.client(opened_on="2026-02-20")
    await env.client(opened_on="2026-02-25")
    book = [await env.client(opened_on="2025-06-01") for _ in range(11)]
    before = await env.stub.GetRegulatoryProgress(api.GetRegulatoryProgressRequest(year=2026),
                                                  metadata=SUPERVISOR)
    assert (before.new_accounts, before.new_accounts_overdue, before.new_accounts_open) == (3, 1, 2)
    assert before.overdue_client_ids == [late.id]
    assert (before.year_end_clients, before.year_end_required, before.year_end_gap) == (11, 2, 2)

    new = await env.stub.CreateCampaign(api.CreateCampaignRequest(campaign=campaign(
        [agent], name="New accounts", kind=cpb.CAMPAIGN_KIND_NEW_ACCOUNTS)), metadata=SUPERVISOR)
    assert new.target_count == 3
    targets = await env.stub.ListTargets(api.ListTargetsRequest(campaign_id=new.id),
                                         metadata=SUPERVISOR)
    assert sorted(t.due_date for t in targets.targets) == ["2026-02-05", "2026-03-20",
                                                           "2026-03-25"]
    progress = await env.stub.GetCampaignProgress(api.GetCampaignProgressRequest(id=new.id),
                                                  metadata=SUPERVISOR)
    assert progress.overdue == 1
    # an account opened now joins the running new-account campaign (client.created event)
    fresh = await env.client(opened_on="2026-03-02")

    async def joined() -> bool:
        t = await env.stub.ListTargets(api.ListTargetsRequest(campaign_id=new.id),
                                       metadata=SUPERVISOR)
        return fresh.id in {x.client_id for x in t.targets}

    await eventually(joined)
    # the overdue account comes first
    first = await env.stub.NextCallback(api.NextCallbackRequest(), metadata=md)
    assert first.target.client_id == late.id
    await env.stub.RecordCallback(api.RecordCallbackRequest(
        target_id=first.target.id, outcome=cpb.CALLBACK_OUTCOME_REACHED), metadata=md)
    assert await reach_all(env, md) == 3
    await env.stub.CloseCampaign(api.CloseCampaignRequest(id=new.id), metadata=SUPERVISOR)

    sample = await env.stub.CreateCampaign(api.CreateCampaignRequest(campaign=campaign(
        [agent], name="Annual 10%", kind=cpb.CAMPAIGN_KIND_ANNUAL_SAMPLE)), metadata=SUPERVISOR)
    assert sample.target_count == 3  # gap 2, with a margin
    nxt = await env.stub.NextCallback(api.NextCallbackRequest(), metadata=md)
    assert nxt.target.client_id in {c.id for c in book}
    await env.stub.RecordCallback(api.RecordCallbackRequest(
        target_id=nxt.target.id, outcome=cpb.CALLBACK_OUTCOME_REACHED), metadata=md)
    after = await env.stub.GetRegulatoryProgress(api.GetRegulatoryProgressRequest(),
                                                 metadata=SUPERVISOR)
    assert after.year == 2026
    assert after.new_accounts == 4 and after.new_accounts_called_in_time == 3
    assert after.new_accounts_overdue == 1  # reached, but after its month
    assert (after.year_end_clients_called, after.year_end_gap) == (1, 1)


async def test_regulatory_roles_and_year(env: Env) -> None:
    _, md = await env.agent()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.GetRegulatoryProgress(api.GetRegulatoryProgressRequest(), metadata=md)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.GetRegulatoryProgress(api.GetRegulatoryProgressRequest(year=2031),
                                             metadata=auth("c1", "compliance"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
