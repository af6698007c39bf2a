"""The one client module behind every page: channels to the services (made once, through
services/common/channels.py) and the signed-in person's token on every call.

A page asks `Backend.stubs(session)` for the stubs it needs; each call carries the person's
own bearer token, so every service applies its own role and scope rules. The access token
is renewed with the refresh token shortly before it expires (the directory rotates the
refresh token; the new pair is written to the session at once).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import grpc
from branch.directory.v1 import directory_service_pb2_grpc as directory_grpc
from branch.directory.v1 import identity_pb2, identity_pb2_grpc
from branch.insight.v1 import insight_service_pb2_grpc as insight_grpc
from branch.onsite.v1 import onsite_service_pb2_grpc as onsite_grpc
from branch.remote.v1 import remote_service_pb2_grpc as remote_grpc
from branch.research.v1 import research_service_pb2_grpc as research_grpc
from branch.vip.v1 import vip_service_pb2_grpc as vip_grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from services.common import channels
from services.common.settings import Settings
from services.console import i18n
from services.console.sessions import Session, SessionStore

# renew the access token when less than this is left (seconds)
REFRESH_MARGIN = 30
# the session record's mark "a replica is renewing the tokens until <epoch seconds>"
CLAIM = "refreshing_until"
CLAIM_SECONDS = 15.0
POLL_SECONDS = 0.02
SERVICES = ("directory", "onsite", "remote", "vip", "research", "insight")


class SignedOut(Exception):
    """The directory refused the refresh token: the sign-in has ended (revoked, reused)."""


@dataclass
class Stubs:
    """Stubs of the six services, and the metadata every call must carry."""

    directory: directory_grpc.DirectoryServiceAsyncStub
    identity: identity_pb2_grpc.IdentityServiceAsyncStub
    onsite: onsite_grpc.OnsiteServiceAsyncStub
    remote: remote_grpc.RemoteServiceAsyncStub
    vip: vip_grpc.VipServiceAsyncStub
    research: research_grpc.ResearchServiceAsyncStub
    insight: insight_grpc.InsightServiceAsyncStub
    metadata: tuple[tuple[str, str], ...]


class Backend:
    def __init__(self, settings: Settings, store: SessionStore) -> None:
        self.settings = settings
        self.store = store
        self.channels = {s: channels.aio_channel(settings, s) for s in SERVICES}
        self._refreshing: dict[str, asyncio.Lock] = {}

    @property
    def identity(self) -> identity_pb2_grpc.IdentityServiceAsyncStub:
        """The directory's IdentityService, called without a token (Login, ChangePassword)."""
        stub: identity_pb2_grpc.IdentityServiceAsyncStub = identity_pb2_grpc.IdentityServiceStub(
            self.channels["directory"])
        return stub

    def directory_stub(self) -> directory_grpc.DirectoryServiceAsyncStub:
        stub: directory_grpc.DirectoryServiceAsyncStub = directory_grpc.DirectoryServiceStub(
            self.channels["directory"])
        return stub

    async def stubs(self, session: Session, now: datetime) -> Stubs:
        token = await self.access_token(session, now)
        ch = self.channels
        return Stubs(
            directory=cast(Any, directory_grpc.DirectoryServiceStub(ch["directory"])),
            identity=self.identity,
            onsite=cast(Any, onsite_grpc.OnsiteServiceStub(ch["onsite"])),
            remote=cast(Any, remote_grpc.RemoteServiceStub(ch["remote"])),
            vip=cast(Any, vip_grpc.VipServiceStub(ch["vip"])),
            research=cast(Any, research_grpc.ResearchServiceStub(ch["research"])),
            insight=cast(Any, insight_grpc.InsightServiceStub(ch["insight"])),
            metadata=(("authorization", f"Bearer {token}"),
                      ("accept-language", i18n.html_lang())))  # the services' words: the page's

    async def access_token(self, session: Session, now: datetime) -> str:
        """The session's access token, renewed first when it is about to expire.

        The refresh token is single use: a second spend looks like a stolen token to the
        directory, which ends the sign-in. So exactly one renewal happens per expiry across
        every replica: in this process one task per session renews (a lock), and across
        replicas the renewing one first claims the record (`refreshing_until` in its extra,
        written with a compare-and-set on the record's revision); a replica that loses the
        race or finds a live claim reads the record again until the new tokens are there
        (polling every POLL_SECONDS; a claim left by a replica that died lapses after
        CLAIM_SECONDS, wall clock, and may then be taken over)."""
        if _fresh(session, now):
            return session.access_token
        lock = self._refreshing.setdefault(session.id, asyncio.Lock())
        try:
            async with lock:
                await self._renew(session, now)
        finally:
            if not lock.locked():
                self._refreshing.pop(session.id, None)
        return session.access_token

    async def _renew(self, session: Session, now: datetime) -> None:
        waited = 0.0
        while True:
            latest = await self.store.get(session.id)
            if latest is None:
                raise SignedOut("the sign-in has ended")
            if _fresh(latest, now):
                _adopt(session, latest)
                return
            if float(latest.extra.get(CLAIM, 0)) > time.time():  # another replica renews
                if waited > CLAIM_SECONDS + 5:
                    raise SignedOut("the token renewal did not finish")
                await asyncio.sleep(POLL_SECONDS)
                waited += POLL_SECONDS
                continue
            latest.extra[CLAIM] = time.time() + CLAIM_SECONDS
            if not await self.store.replace(latest):
                continue  # another replica wrote first: read again
            break
        try:
            reply = await self.identity.RefreshToken(
                identity_pb2.RefreshTokenRequest(refresh_token=latest.refresh_token),
                timeout=10)
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.UNAUTHENTICATED:
                raise SignedOut(err.details() or "") from None
            await self._write(session.id, lambda s: s.extra.pop(CLAIM, None))  # others may try
            raise
        tokens = (reply.access_token, float(reply.access_expire_time.seconds),
                  reply.refresh_token, list(reply.roles))

        def apply(s: Session) -> None:
            s.access_token, s.access_expires, s.refresh_token, s.roles = tokens
            s.extra.pop(CLAIM, None)

        apply(session)
        await self._write(session.id, apply)

    async def _write(self, session_id: str, change: Callable[[Session], object]) -> None:
        """Apply `change` to the stored record, again on a fresher copy until it sticks."""
        while (latest := await self.store.get(session_id)) is not None:
            change(latest)
            if await self.store.replace(latest):
                return

    async def close(self) -> None:
        for ch in self.channels.values():
            await ch.close()


def _fresh(session: Session, now: datetime) -> bool:
    return now.timestamp() < session.access_expires - REFRESH_MARGIN


def _adopt(session: Session, latest: Session) -> None:
    session.access_token = latest.access_token
    session.access_expires = latest.access_expires
    session.refresh_token = latest.refresh_token
    session.roles = list(latest.roles)
    session.revision = latest.revision


def error_message(err: grpc.aio.AioRpcError, lang: str) -> str:
    """What a service said, for a person: its zh-CN LocalizedMessage in Chinese, the status
    message otherwise."""
    status = _status(err)
    if lang == "zh_CN" and status is not None:
        for detail in status.details:
            if detail.Is(error_details_pb2.LocalizedMessage.DESCRIPTOR):
                msg = error_details_pb2.LocalizedMessage()
                detail.Unpack(msg)
                if msg.locale.lower().startswith("zh"):
                    return str(msg.message)
    return err.details() or err.code().name


def bad_fields(err: grpc.aio.AioRpcError) -> dict[str, str]:
    """{field: description} from a google.rpc.BadRequest detail (shown beside the field)."""
    status = _status(err)
    found: dict[str, str] = {}
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            found.update({v.field: v.localized_message.message or v.description
                          for v in bad.field_violations})
    return found


def _status(err: grpc.aio.AioRpcError) -> Any:
    try:
        return rpc_status.from_call(cast(grpc.Call, err))
    except ValueError:
        return None
