"""Advice obeys suitability: an expired assessment refuses advice of any risk level unless a
reason overrides it; the override is recorded on the advisory and flagged in the event."""

from __future__ import annotations

import grpc
import pytest
from branch.directory.v1 import client_pb2
from branch.vip.v1 import events_pb2
from branch.vip.v1 import vip_service_pb2 as api

from tests.harness import collect_events
from tests.vip.support import Branch, broker
from tests.vip.test_advisory import ask, setup_client


async def test_expired_assessment_needs_an_override_then_is_flagged(b: Branch) -> None:
    br, _, client_id = await setup_client(b, tolerance=client_pb2.RISK_TOLERANCE_C5,
                                          assessed_on="2023-01-05")
    adv = await ask(b, client_id, broker(br))
    for reason in ("", "   "):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await b.vip.AnswerAdvisory(api.AnswerAdvisoryRequest(
                id=adv.id, advice="Hold.", risk_level=client_pb2.RISK_LEVEL_R1,
                override_reason=reason), metadata=broker(br))
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "expired" in (err.value.details() or "")
    still = await b.vip.GetAdvisory(api.GetAdvisoryRequest(id=adv.id), metadata=broker(br))
    assert still.state == adv.state and not still.advice  # a refusal changes nothing
    done = await b.vip.AnswerAdvisory(api.AnswerAdvisoryRequest(
        id=adv.id, advice="Hold.", risk_level=client_pb2.RISK_LEVEL_R1,
        override_reason="reassessment booked for Monday"), metadata=broker(br))
    assert done.suitability_overridden
    assert done.override_reason == "reassessment booked for Monday"
    [event] = await collect_events(b.nats_url, "branch.vip.advisory.answered", count=1)
    msg = events_pb2.AdvisoryAnswered()
    msg.ParseFromString(event.data)
    assert msg.suitability_overridden and msg.advice_risk_level == client_pb2.RISK_LEVEL_R1


async def test_suitable_advice_ignores_an_override_reason(b: Branch) -> None:
    br, _, client_id = await setup_client(b, tolerance=client_pb2.RISK_TOLERANCE_C3)
    adv = await ask(b, client_id, broker(br))
    done = await b.vip.AnswerAdvisory(api.AnswerAdvisoryRequest(
        id=adv.id, advice="Hold.", risk_level=client_pb2.RISK_LEVEL_R3,
        override_reason="not needed"), metadata=broker(br))
    assert not done.suitability_overridden and done.override_reason == ""
