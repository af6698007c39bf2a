"""Apply a service's Alembic migrations at start-up; the environment lives in migrations_env/.

Two branches in each service's database: the platform tables (outbox, processed events,
audit, idempotency) in the `common` branch, whose versions live once in
services/common/migrations_env/versions, and the service's own tables in its branch, whose first
revision depends on common_0001. Upgrading goes to both heads.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlmodel import SQLModel

from services.common.db import Database
from services.common.models import COMMON_TABLES

ENV_DIR = Path(__file__).parent / "migrations_env"
COMMON_VERSIONS = ENV_DIR / "versions"


def alembic_config(versions: Path) -> Config:
    """The service's versions and the common branch's; versions may be the common one."""
    cfg = Config()
    cfg.set_main_option("script_location", str(ENV_DIR))
    locations = dict.fromkeys([str(COMMON_VERSIONS), str(versions)])
    cfg.set_main_option("version_locations", os.pathsep.join(locations))
    cfg.set_main_option("path_separator", "os")
    return cfg


def service_tables(service: str) -> set[str]:
    """The tables a branch owns: common's are the platform tables; a service owns the tables
    named <service>_...."""
    if service == "common":
        return set(COMMON_TABLES)
    return {t for t in SQLModel.metadata.tables if t.startswith(f"{service}_")}


async def upgrade(db: Database, versions: Path) -> None:
    def _run(sync_conn: Any) -> None:
        if sync_conn.dialect.name == "postgresql":
            # replicas starting together: one migrates, the others wait and find it done
            sync_conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_lock_key(db.service)})")
        cfg = alembic_config(versions)
        cfg.attributes["connection"] = sync_conn
        command.upgrade(cfg, "heads")

    async with db.engine.connect() as conn:
        conn = await conn.execution_options(branch_write=True)
        async with conn.begin():
            await conn.run_sync(_run)


def _lock_key(service: str) -> int:
    return int.from_bytes(f"mig:{service}".encode()[:8].ljust(8, b"_"), "big") & 0x7FFFFFFFFFFFFFFF
