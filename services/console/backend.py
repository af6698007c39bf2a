"""The one client module behind every page: channels to the services (made once, through
services/common/channels.py) and the signed-in person's token on every call.

A page asks `Backend.stubs(session)` for the stubs it needs; each call carries the person's
own bearer token, so every service applies its own role and scope rules. The access token
is renewed with the refresh token shortly before it expires (the directory rotates the
refresh token; the new pair is written to the session at once).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import grpc
from branch.directory.v1 import directory_service_pb2_grpc as directory_grpc
from branch.directory.v1 import identity_pb2, identity_pb2_grpc
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
SERVICES = ("directory", "onsite", "remote", "vip", "research")


class SignedOut(Exception):
    """The directory refused the refresh token: the sign-in has ended (revoked, reused)."""


@dataclass
class Stubs:
    """Stubs of the five services, and the metadata every call must carry."""

    directory: directory_grpc.DirectoryServiceAsyncStub
    identity: identity_pb2_grpc.IdentityServiceAsyncStub
    onsite: onsite_grpc.OnsiteServiceAsyncStub
    remote: remote_grpc.RemoteServiceAsyncStub
    vip: vip_grpc.VipServiceAsyncStub
    research: research_grpc.ResearchServiceAsyncStub
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
            metadata=(("authorization", f"Bearer {token}"),
                      ("accept-language", i18n.html_lang())))  # the services' words: the page's

    async def access_token(self, session: Session, now: datetime) -> str:
        """The session's access token, renewed first when it is about to expire. One renewal
        per session at a time in this process: the refresh token is single use, and a second
        spend would look like a stolen token and end the sign-in."""
        if now.timestamp() < session.access_expires - REFRESH_MARGIN:
            return session.access_token
        lock = self._refreshing.setdefault(session.id, asyncio.Lock())
        async with lock:
            latest = await self.store.get(session.id) or session
            if now.timestamp() < latest.access_expires - REFRESH_MARGIN:
                session.access_token = latest.access_token
                session.access_expires = latest.access_expires
                session.refresh_token = latest.refresh_token
                return session.access_token
            try:
                reply = await self.identity.RefreshToken(
                    identity_pb2.RefreshTokenRequest(refresh_token=latest.refresh_token),
                    timeout=10)
            except grpc.aio.AioRpcError as err:
                if err.code() == grpc.StatusCode.UNAUTHENTICATED:
                    raise SignedOut(err.details() or "") from None
                raise
            session.access_token = reply.access_token
            session.access_expires = float(reply.access_expire_time.seconds)
            session.refresh_token = reply.refresh_token
            session.roles = list(reply.roles)
            await self.store.put(session)
        self._refreshing.pop(session.id, None)
        return session.access_token

    async def close(self) -> None:
        for ch in self.channels.values():
            await ch.close()


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
