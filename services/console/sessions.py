"""Server-side sessions of the console, shared by its replicas.

The browser holds only a random id (cookie `branch_console`, HttpOnly, SameSite=Lax, Secure
over TLS); the record (who, roles, the directory's access and refresh tokens, the CSRF token,
when it began and was last used) lives in the NATS JetStream key-value bucket
`console_sessions`, whose TTL is the absolute lifetime, so an abandoned record goes by itself.
Every service already has NATS, so replicas share sessions without a new store.

Expiry is decided here, from the injected clock: idle (BRANCH_CONSOLE_SESSION_IDLE_SECONDS
since the last request) and absolute (BRANCH_CONSOLE_SESSION_MAX_SECONDS since sign-in).

Replicas change a record only with `replace`, a compare-and-set on the revision it was read
at (the KV entry's revision): a request that read the record before another replica renewed
its tokens cannot write the spent refresh token back (the directory would take the next
renewal for a stolen token and end the sign-in).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

COOKIE = "branch_console"
BUCKET = "console_sessions"
# the last-use time is written back at most this often (not at every request)
TOUCH_EVERY = timedelta(seconds=60)

IDLE = "idle"
ABSOLUTE = "absolute"
ENDED = "ended"


@dataclass
class Session:
    """One sign-in. Times are UTC ISO strings (JSON in the bucket)."""

    id: str
    staff_id: str
    employee_no: str
    display_name: str
    roles: list[str]
    access_token: str
    access_expires: float  # UTC epoch seconds
    refresh_token: str
    csrf: str
    created_at: str
    last_seen: str
    extra: dict[str, Any] = field(default_factory=dict)
    # the store's revision this copy was read at (not stored): `replace` compares it
    revision: int = 0

    def to_json(self) -> bytes:
        record = asdict(self)
        record.pop("revision")
        return json.dumps(record).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Session:
        return cls(**json.loads(raw))


def new_id() -> str:
    return secrets.token_urlsafe(32)


def expiry(session: Session, now: datetime, idle: timedelta, absolute: timedelta) -> str | None:
    """Why `session` has ended at `now` (IDLE or ABSOLUTE), None while it is alive."""
    if now - datetime.fromisoformat(session.created_at) >= absolute:
        return ABSOLUTE
    if now - datetime.fromisoformat(session.last_seen) >= idle:
        return IDLE
    return None


def needs_touch(session: Session, now: datetime) -> bool:
    return now - datetime.fromisoformat(session.last_seen) >= TOUCH_EVERY


class SessionStore(Protocol):
    async def get(self, session_id: str) -> Session | None:
        """The record with its revision, None when there is none."""

    async def put(self, session: Session) -> None:
        """Write unconditionally (a new sign-in)."""

    async def replace(self, session: Session) -> bool:
        """Write `session` only if the record is still at `session.revision` (then its
        revision is updated); False when another writer came first or the record is gone."""

    async def delete(self, session_id: str) -> None: ...

    async def delete_staff(self, staff_id: str) -> int:
        """End every sign-in of one person (after a password change); how many ended."""


class MemoryStore:
    """For unit tests of pure logic only."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[bytes, int]] = {}
        self.last = 0

    async def get(self, session_id: str) -> Session | None:
        if session_id not in self.rows:
            return None
        raw, revision = self.rows[session_id]
        s = Session.from_json(raw)
        s.revision = revision
        return s

    async def put(self, session: Session) -> None:
        self.last += 1
        self.rows[session.id] = (session.to_json(), self.last)
        session.revision = self.last

    async def replace(self, session: Session) -> bool:
        if self.rows.get(session.id, (b"", -1))[1] != session.revision:
            return False
        await self.put(session)
        return True

    async def delete(self, session_id: str) -> None:
        self.rows.pop(session_id, None)

    async def delete_staff(self, staff_id: str) -> int:
        mine = [k for k in list(self.rows) if (s := await self.get(k)) and s.staff_id == staff_id]
        for k in mine:
            self.rows.pop(k, None)
        return len(mine)


class NatsStore:
    """The JetStream KV bucket BUCKET (created on first use, TTL = the absolute lifetime)."""

    def __init__(self, kv: Any) -> None:
        self.kv = kv

    @classmethod
    async def connect(cls, nats_url: str, max_age: timedelta,
                      replicas: int = 1) -> tuple[NatsStore, Any]:
        """The store and its NATS connection (the caller closes it)."""
        import nats
        from nats.js.api import KeyValueConfig

        nc = await nats.connect(nats_url, max_reconnect_attempts=-1)
        js = nc.jetstream()
        try:
            kv = await js.key_value(BUCKET)
        except Exception:  # nats.js.errors.BucketNotFoundError, or NotFound on older servers
            kv = await js.create_key_value(KeyValueConfig(
                bucket=BUCKET, ttl=max_age.total_seconds(), history=1, replicas=replicas))
        return cls(kv), nc

    async def get(self, session_id: str) -> Session | None:
        from nats.js.errors import KeyNotFoundError

        if not session_id or not all(c.isalnum() or c in "-_" for c in session_id):
            return None  # not a key we made (KV keys allow a limited alphabet)
        try:
            entry = await self.kv.get(session_id)
        except KeyNotFoundError:  # also KeyDeletedError, its subclass
            return None
        if not entry.value:
            return None
        s = Session.from_json(entry.value)
        s.revision = entry.revision
        return s

    async def put(self, session: Session) -> None:
        session.revision = await self.kv.put(session.id, session.to_json())

    async def replace(self, session: Session) -> bool:
        from nats.js.errors import KeyWrongLastSequenceError

        try:
            session.revision = await self.kv.update(session.id, session.to_json(),
                                                    last=session.revision)
        except KeyWrongLastSequenceError:
            return False
        return True

    async def delete(self, session_id: str) -> None:
        await self.kv.purge(session_id)

    async def delete_staff(self, staff_id: str) -> int:
        """Reads every record: the bucket holds a branch's live sign-ins (tens to hundreds),
        and this runs only when someone changes their password."""
        from nats.js.errors import NoKeysError

        try:
            keys = await self.kv.keys()
        except NoKeysError:
            return 0
        ended = 0
        for key in keys:
            s = await self.get(key)
            if s is not None and s.staff_id == staff_id:
                await self.delete(key)
                ended += 1
        return ended
