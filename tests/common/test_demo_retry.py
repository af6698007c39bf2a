"""The demo loader retries a call the service could not answer for a passing reason.

Under load, `branch up --demo` died on one UNAVAILABLE ("directory did not answer:
DEADLINE_EXCEEDED") from the on-site service. Here the directory really is down when the
loader's call reaches the on-site service, and comes back half a second later."""

from __future__ import annotations

import asyncio
from pathlib import Path

from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceStub
from branch.onsite.v1 import onsite_service_pb2 as api
from branch.onsite.v1.onsite_service_pb2_grpc import OnsiteServiceStub

from services import registry
from services.cli.demo import Demo
from services.common.nats_link import free_port
from services.common.server import ServiceRunner
from tests.harness import SUPERVISOR, make_settings, token
from tests.onsite.conftest import make_staff


async def test_loader_retries_while_a_peer_is_down(tmp_path: Path, nats_url: str) -> None:
    ports = {name: free_port() for name in ("directory", "onsite")}
    settings = make_settings(tmp_path, nats_url,
                             **{f"{n}_addr": f"127.0.0.1:{p}" for n, p in ports.items()})
    directory_spec, onsite_spec = registry.spec("directory"), registry.spec("onsite")
    assert directory_spec is not None and onsite_spec is not None
    directory = ServiceRunner(directory_spec, settings, port=ports["directory"])
    await directory.start()
    demo = Demo(settings=settings, admin_token=token("admin-1", "admin"))
    try:
        manager = await make_staff(DirectoryServiceStub(demo.channel("directory")),
                                   "client_manager")
    finally:
        await directory.stop(grace=1)
    onsite = ServiceRunner(onsite_spec, settings, port=ports["onsite"])
    await onsite.start()
    directory = ServiceRunner(directory_spec, settings, port=ports["directory"])
    try:
        # a supervisor plans for a manager: on-site asks the directory, which is down
        call = asyncio.ensure_future(OnsiteServiceStub(demo.channel("onsite")).SetDailyPlan(
            api.SetDailyPlanRequest(client_manager_id=manager,
                                    plan_date=demo.today.isoformat(), rooms=["Hall"]),
            metadata=SUPERVISOR))
        await asyncio.sleep(0.5)
        assert not call.done()
        await directory.start()
        plan = await asyncio.wait_for(call, timeout=30)
        assert plan.client_manager_id == manager and list(plan.rooms) == ["Hall"]
    finally:
        await demo.close()
        await onsite.stop(grace=1)
        await directory.stop(grace=1)
