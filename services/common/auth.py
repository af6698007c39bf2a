"""Bearer tokens (JWT, EdDSA with a key id) naming a staff id and roles, their verification,
and the per-method access table.

Only the directory signs (services/directory/keystore.py); services verify with its public
keys (services/common/identity.py fetches them). The verifier knows nothing about where keys
come from, so an external identity provider (OIDC) can be added later as one more key source.
"""

from __future__ import annotations

import contextvars
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import jwt
from cachetools import TLRUCache

from services.common.errors import Msg, PermissionDenied, Unauthenticated
from services.common.keys import ALGORITHM, SigningKey
from services.common.settings import SERVICE_PORTS

ROLES = frozenset(
    {
        "client_manager",
        "consultant",
        "service_agent",
        "broker",
        "analyst",
        "compliance",
        "supervisor",
        "admin",
        "quality_inspector",
    }
)
# Every service's own token holds this role and service:<its name>; no staff member holds
# either. Access tables name the services that may call a method (svc("vip")), so a service
# reaches only the methods it calls; a bare SERVICE_ROLE entry would admit every service.
SERVICE_ROLE = "service"
SERVICE_NAMES = tuple(SERVICE_PORTS)
ISSUER = "branch"


def service_role(name: str) -> str:
    """The role naming one service, e.g. "service:vip"."""
    return f"{SERVICE_ROLE}:{name}"


def svc(*names: str) -> tuple[str, ...]:
    """Roles for these services, for access tables: allow("admin", *svc("vip"))."""
    unknown = set(names) - set(SERVICE_NAMES)
    if unknown:
        raise ValueError(f"unknown services: {sorted(unknown)}")
    return tuple(service_role(n) for n in names)


@dataclass(frozen=True)
class Principal:
    staff_id: str
    roles: frozenset[str]

    def has(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))

    @property
    def sees_branch(self) -> bool:
        """Supervisors, admins and services see the whole branch; others only their scope."""
        return self.has("supervisor", "admin", SERVICE_ROLE)


_current: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "principal", default=None
)


def current_principal() -> Principal:
    principal = _current.get()
    if principal is None:  # only reachable from code that runs outside an RPC
        raise Unauthenticated("no caller identity")
    return principal


def set_principal(principal: Principal | None) -> contextvars.Token[Principal | None]:
    return _current.set(principal)


def reset_principal(token: contextvars.Token[Principal | None]) -> None:
    _current.reset(token)


@dataclass(frozen=True)
class Standing:
    """What the directory last said about a staff member (see services.common.revocation):
    a deactivated member's tokens are refused; a token issued at or before `changed`
    (seconds since the epoch, UTC) keeps only the roles the member still holds."""

    active: bool
    roles: frozenset[str]
    changed: float


class TokenSigner:
    """Signs access tokens with one Ed25519 key. Only the directory holds one (and the test
    harness, whose public key the test runners are told to trust)."""

    def __init__(self, key: SigningKey, issuer: str = ISSUER) -> None:
        self.key = key
        self.issuer = issuer

    @property
    def kid(self) -> str:
        return self.key.kid

    def issue(
        self,
        staff_id: str,
        roles: Iterable[str],
        now: datetime,
        ttl: timedelta,
        *,
        extra: Mapping[str, Any] | None = None,
    ) -> str:
        """A JWT naming staff_id (sub) and roles, valid from now for ttl; iat/exp in seconds."""
        claims: dict[str, Any] = {
            **(extra or {}),
            "iss": self.issuer,
            "sub": staff_id,
            "roles": sorted(set(roles)),
            "iat": int(now.timestamp()),
            "exp": int((now + ttl).timestamp()),
        }
        return jwt.encode(claims, self.key.private, algorithm=ALGORITHM,
                          headers={"kid": self.key.kid})


StandingLookup = Callable[[str], "Standing | None"]


class UnknownKey(Unauthenticated):
    """The token names a key id this verifier does not know (yet: keys may have rotated)."""

    def __init__(self, kid: str) -> None:
        super().__init__(Msg("token signed with an unknown key"), reason="TOKEN_INVALID")
        self.kid = kid


@dataclass(frozen=True)
class _Verified:
    """What a token's signature and claims said, checked once (TokenVerifier's cache)."""

    staff_id: str
    roles: frozenset[str]
    iat: float
    exp: float


def _until_expiry(_token: str, verified: _Verified, _now: float) -> float:
    return verified.exp


class TokenVerifier:
    """Checks a bearer token: EdDSA only, a known key id, issuer, expiry, then the staff
    member's standing (deactivated: refused; roles removed since the token was issued:
    dropped). Keys come from named sources (the directory's JWKS, keys the operator
    configured); on a token naming an unknown key, the caller may await refresh(kid) (which
    fetches keys again, at most once a second) and verify once more.

    A token whose signature and claims passed is remembered (at most CACHED tokens, each
    until its `exp`, wall clock), so a repeated token skips the signature check, about a
    third of a small call's CPU. The standing is looked up on every call, hit or not: a
    deactivation refuses the next call at once. Changing the keys forgets every token."""

    CACHED = 4096

    def __init__(
        self,
        *,
        standing: StandingLookup | None = None,
        refresh: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self._sources: dict[str, dict[str, Any]] = {}
        self._keys: dict[str, Any] = {}
        self.standing = standing
        self.refresh = refresh
        self._verified: TLRUCache[str, _Verified] = TLRUCache(
            self.CACHED, _until_expiry, timer=lambda: time.time())

    def set_keys(self, source: str, document: str | Mapping[str, Any]) -> None:
        """Replace one source's keys with a JWKS document (JSON text or a dict). Keys not of
        type OKP/Ed25519 for EdDSA are ignored."""
        doc = json.loads(document) if isinstance(document, str) else dict(document)
        keys: dict[str, Any] = {}
        for jwk in doc.get("keys", []):
            if not isinstance(jwk, dict) or jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
                continue
            if jwk.get("alg", ALGORITHM) != ALGORITHM or not isinstance(jwk.get("kid"), str):
                continue
            keys[jwk["kid"]] = jwt.PyJWK(jwk, algorithm=ALGORITHM).key
        self._sources[source] = keys
        merged: dict[str, Any] = {}
        for source_keys in self._sources.values():
            merged.update(source_keys)
        self._keys = merged
        self._verified.clear()  # a key taken away takes its tokens with it

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._keys)

    def verify(self, token: str) -> Principal:
        verified = self._verified.get(token)
        if verified is None:
            verified = self._check_signature_and_claims(token)
            self._verified[token] = verified
        held = verified.roles
        standing = self.standing(verified.staff_id) if self.standing is not None else None
        if standing is not None:
            if not standing.active:
                raise Unauthenticated("staff member is deactivated", reason="TOKEN_REVOKED")
            if verified.iat <= standing.changed:
                held = held & standing.roles
        return Principal(staff_id=verified.staff_id, roles=held)

    def _check_signature_and_claims(self, token: str) -> _Verified:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("invalid token", reason="TOKEN_INVALID") from None
        kid = header.get("kid")
        if header.get("alg") != ALGORITHM or not isinstance(kid, str):
            raise Unauthenticated("invalid token", reason="TOKEN_INVALID")
        key = self._keys.get(kid)
        if key is None:
            raise UnknownKey(kid)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("token expired", reason="TOKEN_EXPIRED") from None
        except jwt.PyJWTError:
            raise Unauthenticated("invalid token", reason="TOKEN_INVALID") from None
        roles = claims.get("roles")
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise Unauthenticated("invalid token", reason="TOKEN_INVALID")
        return _Verified(staff_id=str(claims["sub"]), roles=frozenset(roles),
                         iat=float(claims["iat"]), exp=float(claims["exp"]))


def service_principal_roles(service: str) -> list[str]:
    """Roles in a service's own token: the generic service role and its own name."""
    return [SERVICE_ROLE, service_role(service)]


def bearer_from_metadata(metadata: Mapping[str, str]) -> str:
    value = metadata.get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("missing bearer token", reason="TOKEN_MISSING")
    return token.strip()


@dataclass(frozen=True)
class Access:
    """Who may call one RPC: staff roles and the services (svc(...)) that call it."""

    roles: frozenset[str]
    mutating: bool = False
    # No token needed (sign-in, refresh, public keys) only when public is True.
    public: bool = False


def allow(*roles: str, mutating: bool = False) -> Access:
    known = ROLES | {SERVICE_ROLE} | {service_role(n) for n in SERVICE_NAMES}
    unknown = set(roles) - known
    if unknown:
        raise ValueError(f"unknown roles in access table: {sorted(unknown)}")
    return Access(roles=frozenset(roles), mutating=mutating)


def public(*, mutating: bool = False) -> Access:
    """A method callable without a token (sign-in, token refresh, the public keys). Its
    handler must not ask for current_principal(); it audits what it does itself."""
    return Access(roles=frozenset(), mutating=mutating, public=True)


@dataclass
class AccessTable:
    """method short name -> Access. A method missing here is refused (fail closed)."""

    methods: dict[str, Access] = field(default_factory=dict)

    def check(self, method: str, principal: Principal) -> Access:
        access = self.methods.get(method)
        if access is None:
            raise PermissionDenied("{method} is not open to any role", method=method,
                                   reason="METHOD_NOT_ALLOWED")
        if not principal.has(*access.roles):
            raise PermissionDenied("role may not call {method}", method=method,
                                   reason="ROLE_NOT_ALLOWED")
        return access
