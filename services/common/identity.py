"""A service's identity plumbing: its own short-lived token (obtained from the directory and
renewed before it expires) and the directory's public keys (fetched, cached, fetched again
on a key id it does not know, on the directory's "keys changed" hint, and periodically).

No service but the directory holds a signing key. A service proves who it is to the
directory with a credential derived from the directory's service key
(`branch service-credential SERVICE` prints it for separate hosts).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from branch.directory.v1 import identity_pb2, identity_pb2_grpc

from services.common import channels
from services.common.auth import TokenSigner, TokenVerifier, service_principal_roles
from services.common.clock import Clock
from services.common.logs import get_logger
from services.common.settings import Settings

CONFIGURED_SOURCE = "configured"
DIRECTORY_SOURCE = "directory"


def service_credential(service_secret: str, service: str) -> str:
    """The credential of one service, derived from the directory's service key (HMAC-SHA256,
    hex). Knowing one service's credential tells nothing about another's."""
    return hmac.new(service_secret.encode(), f"service:{service}".encode(),
                    hashlib.sha256).hexdigest()


def credential_of(settings: Settings, service: str) -> str:
    return settings.service_credential or service_credential(settings.service_secret(), service)


def trust_configured_keys(verifier: TokenVerifier, settings: Settings) -> None:
    """BRANCH_TRUSTED_KEYS: a JWKS document, or the path of a file holding one."""
    value = settings.trusted_keys.strip()
    if not value:
        return
    text = value if value.startswith("{") else Path(value).read_text()
    verifier.set_keys(CONFIGURED_SOURCE, json.loads(text))


class ServiceTokens(Protocol):
    """This service's own bearer token, for calls to its peers."""

    def current(self) -> str: ...

    def due(self) -> bool: ...

    async def renew(self) -> None: ...


class _Renewing:
    expires: datetime | None = None
    issued: datetime | None = None
    token: str = ""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def current(self) -> str:
        return self.token

    def due(self) -> bool:
        """True when there is no token or half its life has passed."""
        if not self.token or self.expires is None or self.issued is None:
            return True
        return self.clock.now() >= self.issued + (self.expires - self.issued) / 2


class LocalServiceTokens(_Renewing):
    """Tokens signed in-process: by the directory for itself, or by the test harness."""

    def __init__(self, service: str, signer: Callable[[], TokenSigner], clock: Clock,
                 ttl: timedelta) -> None:
        super().__init__(clock)
        self.service, self.signer, self.ttl = service, signer, ttl

    async def renew(self) -> None:
        now = self.clock.now()
        self.token = self.signer().issue(f"svc:{self.service}",
                                         service_principal_roles(self.service), now, self.ttl)
        self.issued, self.expires = now, now + self.ttl


class DirectoryServiceTokens(_Renewing):
    """Tokens the directory issues to this service for its credential."""

    def __init__(self, service: str, settings: Settings, clock: Clock) -> None:
        super().__init__(clock)
        self.service, self.settings = service, settings
        self._credential = credential_of(settings, service)

    async def renew(self) -> None:
        async with channels.aio_channel(self.settings, "directory", caller=self.service) as ch:
            reply = await identity_pb2_grpc.IdentityServiceStub(ch).IssueServiceToken(
                identity_pb2.IssueServiceTokenRequest(service=self.service,
                                                      credential=self._credential),
                timeout=10)
        self.token = reply.token
        self.issued = self.clock.now()
        self.expires = reply.expire_time.ToDatetime(tzinfo=UTC)


async def keep_renewed(tokens: ServiceTokens, stop: asyncio.Event, service: str) -> None:
    """Renew the service token at half life; retry every second while the directory is away
    (the old token stays in use until it expires)."""
    log = get_logger(service, component="service-token")
    failures = 0
    while not stop.is_set():
        if tokens.due():
            try:
                await tokens.renew()
                if failures:
                    log.info("service token obtained")
                failures = 0
            except Exception as exc:
                failures += 1
                if failures in (1, 10) or failures % 60 == 0:
                    log.warning("service token not renewed; retrying", error=type(exc).__name__)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=1.0)


class DirectoryKeys:
    """Keeps the verifier's "directory" key source equal to the directory's JWKS."""

    MIN_INTERVAL = 1.0

    def __init__(self, service: str, settings: Settings, verifier: TokenVerifier) -> None:
        self.settings = settings
        self.verifier = verifier
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._last = 0.0
        self.loaded = False
        self.service = service
        self.log = get_logger(service, component="keys")

    def request_refresh(self) -> None:
        """The directory's hint that keys changed: fetch soon, in the background."""
        self._wake.set()

    async def fetch_for(self, kid: str) -> None:
        """A token named an unknown key: fetch the keys, at most once a second (a flood of
        made-up key ids costs the directory one call a second, and waits for it)."""
        async with self._lock:
            if kid in self.verifier.key_ids:
                return  # a fetch made while this call waited brought it
            wait = self.MIN_INTERVAL - (time.monotonic() - self._last)
            if wait > 0:
                await asyncio.sleep(wait)
            await self._fetch_locked()

    async def fetch(self) -> None:
        async with self._lock:
            await self._fetch_locked()

    async def _fetch_locked(self) -> None:
        self._last = time.monotonic()
        async with channels.aio_channel(self.settings, "directory", caller=self.service) as ch:
            reply = await identity_pb2_grpc.IdentityServiceStub(ch).ListSigningKeys(
                identity_pb2.ListSigningKeysRequest(), timeout=5)
        self.verifier.set_keys(DIRECTORY_SOURCE, reply.jwks)
        if not self.loaded:
            self.log.info("directory keys loaded")
        self.loaded = True

    async def run(self, stop: asyncio.Event) -> None:
        failures = 0
        while not stop.is_set():
            self._wake.clear()
            try:
                await self.fetch()
                failures = 0
            except Exception as exc:
                failures += 1
                if failures in (1, 10) or failures % 60 == 0:
                    self.log.warning("directory keys not fetched", error=type(exc).__name__)
            wait = self.settings.keys_refresh_seconds if self.loaded else min(2.0 ** failures, 10)
            await asyncio.sleep(self.MIN_INTERVAL)  # at most one fetch a second
            waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
            try:
                await asyncio.wait(waits, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()


class SigningSide(Protocol):
    """What the directory's key store offers the runner: its public keys and its signer."""

    def jwks(self) -> str: ...

    def signer(self) -> TokenSigner: ...

    async def reload(self) -> None: ...
