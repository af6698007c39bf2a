"""Names travel with ids (issue 13): on-site keeps clients' and staff members' display names
from the directory's events; forms and plans carry them beside the ids."""

from __future__ import annotations

from branch.directory.v1 import client_pb2
from branch.directory.v1 import directory_service_pb2 as dapi
from branch.onsite.v1 import onsite_service_pb2 as api
from google.protobuf.field_mask_pb2 import FieldMask

from services.onsite.models import PersonName
from tests.harness import ADMIN, eventually
from tests.onsite.conftest import World
from tests.onsite.test_forms import raise_form


async def test_forms_carry_names_and_a_rename_reaches_them(world: World) -> None:
    made = await raise_form(world)
    o = world.s.onsite

    async def named() -> bool:
        got = await o.ListConsultationForms(api.ListConsultationFormsRequest(
            client_id=world.client_a), metadata=world.as_sup)
        f = next(f for f in got.forms if f.id == made.id)
        return (f.client_display_name, f.client_manager_display_name,
                f.consultant_display_name) == ("Client", "Staff", "Staff")

    await eventually(named)
    await world.s.directory.UpdateClient(dapi.UpdateClientRequest(
        client=client_pb2.Client(id=world.client_a, display_name="赵敏"),
        update_mask=FieldMask(paths=["display_name"])), metadata=ADMIN)

    async def renamed() -> bool:
        f = await o.GetConsultationForm(api.GetConsultationFormRequest(id=made.id),
                                        metadata=world.as_sup)
        return f.client_display_name == "赵敏"

    await eventually(renamed)
    async with world.s.runner.db.read() as s:
        row = await s.get(PersonName, world.client_a)
    assert row is not None and row.kind == "client" and row.display_name == "赵敏"


async def test_first_use_keeps_the_name_the_directory_answered(world: World) -> None:
    """A name the events have not brought (here: removed from the copy) comes back when
    on-site asks the directory about the client anyway."""
    await eventually(lambda: _known(world, world.client_b))
    async with world.s.runner.db.transaction() as s:
        await s.delete(await s.get(PersonName, world.client_b))
    await world.s.onsite.RaiseConsultationForm(api.RaiseConsultationFormRequest(
        client_id=world.client_b, consultant_id=world.cons1, request_note="rebalance"),
        metadata=world.as_cm2)
    assert await eventually(lambda: _known(world, world.client_b))


async def _known(world: World, person_id: str) -> bool:
    async with world.s.runner.db.read() as s:
        return await s.get(PersonName, person_id) is not None
