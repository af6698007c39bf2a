"""Bearer tokens (JWT, HS256) naming a staff id and roles, and the per-method access table."""

from __future__ import annotations

import contextvars
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import jwt

from services.common.errors import PermissionDenied, Unauthenticated

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
# Services call each other with this role; no staff member holds it.
SERVICE_ROLE = "service"
ISSUER = "branch"


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


class TokenSigner:
    def __init__(self, key: str) -> None:
        if len(key) < 16:
            raise ValueError("token signing key must be at least 16 characters")
        self._key = key

    def issue(self, staff_id: str, roles: Iterable[str], now: datetime, ttl: timedelta) -> str:
        claims = {
            "iss": ISSUER,
            "sub": staff_id,
            "roles": sorted(roles),
            "iat": int(now.timestamp()),
            "exp": int((now + ttl).timestamp()),
        }
        return jwt.encode(claims, self._key, algorithm="HS256")

    def verify(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=["HS256"],
                issuer=ISSUER,
                options={"require": ["exp", "sub", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("token expired", reason="TOKEN_EXPIRED") from None
        except jwt.PyJWTError:
            raise Unauthenticated("invalid token", reason="TOKEN_INVALID") from None
        roles = claims.get("roles")
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise Unauthenticated("invalid token", reason="TOKEN_INVALID")
        return Principal(staff_id=str(claims["sub"]), roles=frozenset(roles))

    def service_token(self, service: str, now: datetime) -> str:
        return self.issue(f"svc:{service}", [SERVICE_ROLE], now, timedelta(days=3650))


def bearer_from_metadata(metadata: Mapping[str, str]) -> str:
    value = metadata.get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("missing bearer token", reason="TOKEN_MISSING")
    return token.strip()


@dataclass(frozen=True)
class Access:
    """Who may call one RPC. Services may always call; list them explicitly anyway via roles."""

    roles: frozenset[str]
    mutating: bool = False
    # Roles also need no token (health-like public calls) only when public is True.
    public: bool = False


def allow(*roles: str, mutating: bool = False) -> Access:
    unknown = set(roles) - ROLES - {SERVICE_ROLE}
    if unknown:
        raise ValueError(f"unknown roles in access table: {sorted(unknown)}")
    return Access(roles=frozenset(roles), mutating=mutating)


@dataclass
class AccessTable:
    """method short name -> Access. A method missing here is refused (fail closed)."""

    methods: dict[str, Access] = field(default_factory=dict)

    def check(self, method: str, principal: Principal) -> Access:
        access = self.methods.get(method)
        if access is None:
            raise PermissionDenied(f"{method} is not open to any role", reason="METHOD_NOT_ALLOWED")
        if not principal.has(*access.roles):
            raise PermissionDenied(f"role may not call {method}", reason="ROLE_NOT_ALLOWED")
        return access
