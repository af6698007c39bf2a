"""Rows to protobuf messages."""

from __future__ import annotations

from datetime import date
from typing import Any

from branch.directory.v1 import client_pb2, holding_pb2, staff_pb2
from sqlalchemy import Row

from services.common.protos import ts
from services.common.suitability import assessment_expired
from services.directory.models import Client, Holding, Security, Staff

ROLE_NAMES = {
    staff_pb2.ROLE_CLIENT_MANAGER: "client_manager",
    staff_pb2.ROLE_CONSULTANT: "consultant",
    staff_pb2.ROLE_SERVICE_AGENT: "service_agent",
    staff_pb2.ROLE_BROKER: "broker",
    staff_pb2.ROLE_ANALYST: "analyst",
    staff_pb2.ROLE_COMPLIANCE: "compliance",
    staff_pb2.ROLE_SUPERVISOR: "supervisor",
    staff_pb2.ROLE_ADMIN: "admin",
    staff_pb2.ROLE_QUALITY_INSPECTOR: "quality_inspector",
}
ROLE_VALUES = {name: value for value, name in ROLE_NAMES.items()}
# a client as the ORM loads it, or a Core row of the client table (the same attribute names)
ClientRow = Client | Row[Any]

def staff_to_proto(row: Staff) -> staff_pb2.Staff:
    msg = staff_pb2.Staff(
        id=row.id,
        employee_no=row.employee_no,
        display_name=row.display_name,
        roles=[ROLE_VALUES[r] for r in row.roles.split(",") if r in ROLE_VALUES],
        active=row.active,
        team_lead_id=row.team_lead_id,
        create_time=ts(row.created_at),
    )
    if row.deactivated_at is not None:
        msg.deactivate_time.CopyFrom(ts(row.deactivated_at))
    return msg


def client_to_proto(row: ClientRow, today: date) -> client_pb2.Client:
    return client_pb2.Client(
        id=row.id,
        account_no=row.account_no,
        display_name=row.display_name,
        phone=row.phone,
        channel=row.channel,  # type: ignore[arg-type]
        tier=row.tier,  # type: ignore[arg-type]
        risk_tolerance=row.risk_tolerance,  # type: ignore[arg-type]
        risk_assessed_on=row.risk_assessed_on.isoformat(),
        risk_assessment_expired=assessment_expired(row.risk_assessed_on, today),
        operating_style=row.operating_style,  # type: ignore[arg-type]
        client_manager_id=row.client_manager_id,
        broker_id=row.broker_id,
        commission_rate=row.commission_rate,
        opened_on=row.opened_on.isoformat(),
        status=row.status,  # type: ignore[arg-type]
        create_time=ts(row.created_at),
        update_time=ts(row.updated_at),
    )


def holding_to_proto(row: Holding, risk_level: int) -> holding_pb2.Holding:
    return holding_pb2.Holding(
        client_id=row.client_id,
        ticker=row.ticker,
        quantity=row.quantity,
        cost_price=row.cost_price,
        market_price=row.market_price,
        risk_level=risk_level,  # type: ignore[arg-type]
        as_of=row.as_of.isoformat(),
        update_time=ts(row.updated_at),
    )


def security_to_proto(row: Security) -> holding_pb2.Security:
    return holding_pb2.Security(
        ticker=row.ticker,
        name=row.name,
        risk_level=row.risk_level,  # type: ignore[arg-type]
        last_price=row.last_price,
    )
