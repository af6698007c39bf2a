"""Staff sign-in (employee number and password, argon2id), refresh tokens rotated on use with
reuse detection, password change and admin reset, role changes, service tokens, and the
public keys. Failed sign-ins are audited and never say whether the employee number exists.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from branch.directory.v1 import events_pb2, identity_pb2, staff_pb2
from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common.auth import SERVICE_NAMES, service_principal_roles
from services.common.clock import Clock
from services.common.db import Database
from services.common.errors import (
    FailedPrecondition,
    InvalidArgument,
    Msg,
    Unauthenticated,
    Violations,
)
from services.common.events import emit
from services.common.identity import service_credential
from services.common.ids import new_id
from services.common.models import AuditRecord
from services.common.protos import ts
from services.directory import convert
from services.directory.keystore import KeyStore
from services.directory.models import Credential, RefreshToken, Staff

SIGN_IN_FAILED = Msg("sign-in refused: wrong employee number or password, or too many attempts")
MIN_PASSWORD = 10
MAX_PASSWORD = 200
ROLES_CHANGED = "branch.directory.staff.roles_changed"
DEACTIVATED = "branch.directory.staff.deactivated"
# Standing publisher: (staff id, active, roles, changed) -> written to the identity bucket.
Publish = Callable[[str, bool, list[str], datetime], Awaitable[None]]


def wall_now() -> datetime:
    """Token times: verifiers check them against the wall clock, whatever clock the
    directory's rules run on (tests inject a frozen one)."""
    return datetime.now(UTC)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Outcome:
    """What a sign-in attempt did, decided inside the transaction, raised after commit."""

    error: Exception | None = None
    staff: Staff | None = None
    family_id: str = ""


@dataclass
class Identity:
    db: Database
    clock: Clock
    keys: KeyStore
    access_ttl: timedelta
    refresh_ttl: timedelta
    service_secret: str
    max_failures: int = 5
    lockout: timedelta = timedelta(minutes=15)
    publish: Publish | None = None
    hasher: PasswordHasher = field(default_factory=PasswordHasher)

    _dummy: str = ""

    @property
    def _dummy_hash(self) -> str:
        """Verified against when the employee number is unknown, so both take as long."""
        if not self._dummy:
            self._dummy = self.hasher.hash(secrets.token_urlsafe(16))
        return self._dummy

    # ---- passwords -----------------------------------------------------------------------

    async def _matches(self, password_hash: str, password: str) -> bool:
        def check() -> bool:
            try:
                return self.hasher.verify(password_hash, password)
            except (VerificationError, InvalidHashError):
                return False

        return await asyncio.to_thread(check)

    async def _check_password(self, method: str, employee_no: str, password: str) -> Staff:
        """The staff member whose password this is, with failures counted and audited;
        UNAUTHENTICATED (one wording for every cause) otherwise."""
        async with self.db.read() as session:
            staff = (await session.exec(
                select(Staff).where(Staff.employee_no == employee_no))).first()
            cred = await session.get(Credential, staff.id) if staff is not None else None
        now = self.clock.now()
        locked = cred is not None and cred.locked_until is not None and cred.locked_until > now
        ok = await self._matches(cred.password_hash if cred else self._dummy_hash, password)
        if staff is None or cred is None:
            await self._audit("", method, employee_no, "UNKNOWN_EMPLOYEE")
            raise Unauthenticated(SIGN_IN_FAILED, reason="SIGN_IN_FAILED")
        if locked:
            await self._audit(staff.id, method, employee_no, "LOCKED")
            raise Unauthenticated(SIGN_IN_FAILED, reason="SIGN_IN_FAILED")
        if not ok:
            async with self.db.transaction() as session:
                row = await session.get(Credential, staff.id)
                assert row is not None
                row.failed_attempts += 1
                outcome = "WRONG_PASSWORD"
                if row.failed_attempts >= self.max_failures:
                    row.failed_attempts = 0
                    row.locked_until = now + self.lockout
                    outcome = "LOCKED_OUT"
                session.add(row)
                session.add(self._audit_row(staff.id, method, employee_no, outcome))
            raise Unauthenticated(SIGN_IN_FAILED, reason="SIGN_IN_FAILED")
        if not staff.active:
            await self._audit(staff.id, method, employee_no, "INACTIVE")
            raise Unauthenticated(SIGN_IN_FAILED, reason="SIGN_IN_FAILED")
        if cred.failed_attempts:
            async with self.db.transaction() as session:
                row = await session.get(Credential, staff.id)
                if row is not None:
                    row.failed_attempts = 0
                    session.add(row)
        return staff

    def _audit_row(self, staff_id: str, method: str, resource: str, outcome: str) -> AuditRecord:
        return AuditRecord(id=new_id(), staff_id=staff_id, method=method,
                           resource=resource.replace("\x00", "")[:200], request_id="",
                           time=self.clock.now(), outcome=outcome)

    async def _audit(self, staff_id: str, method: str, resource: str, outcome: str) -> None:
        async with self.db.transaction() as session:
            session.add(self._audit_row(staff_id, method, resource, outcome))

    @staticmethod
    def _check_new_password(v: Violations, password: str, new_password: str) -> None:
        if len(new_password) < MIN_PASSWORD:
            v.add("new_password", "at least {min_password} characters", min_password=MIN_PASSWORD)
        elif len(new_password) > MAX_PASSWORD:
            v.add("new_password", "at most {max_password} characters", max_password=MAX_PASSWORD)
        elif new_password == password:
            v.add("new_password", "must differ from the current password")

    async def set_password(self, session: AsyncSession, staff_id: str, password: str, *,
                           must_change: bool) -> None:
        await self.set_password_row(session, staff_id, password, self.clock.now(),
                                    must_change=must_change, hasher=self.hasher)

    @staticmethod
    async def set_password_row(session: AsyncSession, staff_id: str, password: str,
                               now: datetime, *, must_change: bool,
                               hasher: PasswordHasher | None = None) -> None:
        """Store an argon2id hash of password; a reset lifts any lockout."""
        row = await session.get(Credential, staff_id)
        hashed = await asyncio.to_thread((hasher or PasswordHasher()).hash, password)
        if row is None:
            row = Credential(staff_id=staff_id, password_hash=hashed, changed_at=now,
                             must_change=must_change)
        else:
            row.password_hash, row.must_change, row.changed_at = hashed, must_change, now
            row.failed_attempts, row.locked_until = 0, None
        session.add(row)

    # ---- sign-in -------------------------------------------------------------------------

    async def login(self, req: identity_pb2.LoginRequest) -> identity_pb2.SignInResponse:
        v = Violations()
        v.check(bool(req.employee_no), "employee_no", "required")
        v.check(bool(req.password), "password", "required")
        v.check(len(req.password) <= MAX_PASSWORD, "password", "too long")
        v.raise_if_any()
        staff = await self._check_password("Login", req.employee_no, req.password)
        async with self.db.read() as session:
            cred = await session.get(Credential, staff.id)
        if cred is not None and cred.must_change:
            raise FailedPrecondition("the password must be changed before signing in",
                                     reason="PASSWORD_CHANGE_REQUIRED")
        async with self.db.transaction() as session:
            refresh = self._new_refresh(session, staff.id, new_id())
            session.add(self._audit_row(staff.id, "Login", req.employee_no, "OK"))
        return self._signed_in(staff, refresh)

    def _new_refresh(
        self, session: AsyncSession, staff_id: str, family_id: str
    ) -> tuple[str, datetime]:
        token_id, secret = new_id(), secrets.token_urlsafe(32)
        now = self.clock.now()
        expires = now + self.refresh_ttl
        session.add(RefreshToken(id=token_id, secret_hash=_sha256(secret), family_id=family_id,
                                 staff_id=staff_id, created_at=now, expires_at=expires))
        return f"{token_id}.{secret}", expires

    def _signed_in(
        self, staff: Staff, refresh: tuple[str, datetime]
    ) -> identity_pb2.SignInResponse:
        now = wall_now()
        roles = [r for r in staff.roles.split(",") if r]
        access = self.keys.signer().issue(staff.id, roles, now, self.access_ttl)
        return identity_pb2.SignInResponse(
            staff_id=staff.id, roles=sorted(roles), access_token=access,
            access_expire_time=ts(now + self.access_ttl), refresh_token=refresh[0],
            refresh_expire_time=ts(refresh[1]))

    async def refresh(self, req: identity_pb2.RefreshTokenRequest) -> identity_pb2.SignInResponse:
        token_id, _, secret = req.refresh_token.partition(".")
        if not token_id or not secret:
            raise InvalidArgument({"refresh_token": "not a refresh token"})
        now = self.clock.now()
        outcome = Outcome()
        refresh: tuple[str, datetime] | None = None
        async with self.db.transaction() as session:
            row = await session.get(RefreshToken, token_id)
            if row is None or not hmac.compare_digest(row.secret_hash, _sha256(secret)):
                outcome.error = Unauthenticated("refresh token not valid",
                                                reason="REFRESH_INVALID")
            elif row.revoked_at is not None:
                outcome.error = Unauthenticated("this sign-in has ended", reason="REFRESH_REVOKED")
            elif row.used_at is not None or not await self._spend(session, row.id, now):
                await self._revoke_family(session, row.family_id, now)
                session.add(self._audit_row(row.staff_id, "RefreshToken", row.family_id,
                                            "REUSE_DETECTED"))
                outcome.error = Unauthenticated("refresh token reused; this sign-in has ended",
                                                reason="REFRESH_REUSED")
            elif row.expires_at <= now:
                outcome.error = Unauthenticated("refresh token expired", reason="REFRESH_EXPIRED")
            else:
                staff = await session.get(Staff, row.staff_id)
                if staff is None or not staff.active:
                    await self._revoke_family(session, row.family_id, now)
                    outcome.error = Unauthenticated("staff member is deactivated",
                                                    reason="REFRESH_REVOKED")
                else:
                    outcome.staff = staff
                    refresh = self._new_refresh(session, staff.id, row.family_id)
        if outcome.error is not None:
            raise outcome.error
        assert outcome.staff is not None and refresh is not None
        return self._signed_in(outcome.staff, refresh)

    @staticmethod
    async def _spend(session: AsyncSession, token_id: str, now: datetime) -> bool:
        """Mark used unless a racing replica already did (then it is a reuse)."""
        result = await session.exec(
            update(RefreshToken)
            .where(col(RefreshToken.id) == token_id, col(RefreshToken.used_at).is_(None))
            .values(used_at=now))
        return bool(result.rowcount)

    @staticmethod
    async def _revoke_family(session: AsyncSession, family_id: str, now: datetime) -> None:
        await session.exec(
            update(RefreshToken)
            .where(col(RefreshToken.family_id) == family_id, col(RefreshToken.revoked_at).is_(None))
            .values(revoked_at=now))

    @staticmethod
    async def revoke_staff(session: AsyncSession, staff_id: str, now: datetime) -> None:
        """End every sign-in of a staff member."""
        await session.exec(
            update(RefreshToken)
            .where(col(RefreshToken.staff_id) == staff_id, col(RefreshToken.revoked_at).is_(None))
            .values(revoked_at=now))

    async def logout(self, req: identity_pb2.LogoutRequest) -> identity_pb2.LogoutResponse:
        token_id, _, secret = req.refresh_token.partition(".")
        async with self.db.transaction() as session:
            row = await session.get(RefreshToken, token_id) if token_id else None
            if row is not None and hmac.compare_digest(row.secret_hash, _sha256(secret)):
                await self._revoke_family(session, row.family_id, self.clock.now())
        return identity_pb2.LogoutResponse()

    async def change_password(
        self, req: identity_pb2.ChangePasswordRequest
    ) -> identity_pb2.ChangePasswordResponse:
        v = Violations()
        v.check(bool(req.employee_no), "employee_no", "required")
        v.check(bool(req.password), "password", "required")
        self._check_new_password(v, req.password, req.new_password)
        v.raise_if_any()
        staff = await self._check_password("ChangePassword", req.employee_no, req.password)
        async with self.db.transaction() as session:
            await self.set_password(session, staff.id, req.new_password, must_change=False)
            await self.revoke_staff(session, staff.id, self.clock.now())
            session.add(self._audit_row(staff.id, "ChangePassword", req.employee_no, "OK"))
        return identity_pb2.ChangePasswordResponse()

    async def reset_password(
        self, req: identity_pb2.ResetPasswordRequest
    ) -> identity_pb2.ResetPasswordResponse:
        if not req.staff_id:
            raise InvalidArgument({"staff_id": "required"})
        temporary = secrets.token_urlsafe(12)
        async with self.db.transaction() as session:
            staff = await session.get(Staff, req.staff_id)
            if staff is None:
                raise InvalidArgument({"staff_id": "no such staff member"})
            if not staff.active:
                raise FailedPrecondition("staff member is deactivated", reason="STAFF_INACTIVE")
            await self.set_password(session, staff.id, temporary, must_change=True)
            await self.revoke_staff(session, staff.id, self.clock.now())
        return identity_pb2.ResetPasswordResponse(temporary_password=temporary)

    # ---- roles and standing --------------------------------------------------------------

    async def set_roles(self, req: identity_pb2.SetStaffRolesRequest) -> staff_pb2.Staff:
        v = Violations()
        v.check(bool(req.staff_id), "staff_id", "required")
        names = [convert.ROLE_NAMES.get(r) for r in req.roles]
        if not req.roles:
            v.add("roles", "at least one role")
        elif None in names:
            v.add("roles", "unknown role")
        v.raise_if_any()
        roles = sorted({n for n in names if n})
        now = self.clock.now()
        async with self.db.transaction() as session:
            staff = await session.get(Staff, req.staff_id)
            if staff is None:
                raise InvalidArgument({"staff_id": "no such staff member"})
            if not staff.active:
                raise FailedPrecondition("staff member is deactivated", reason="STAFF_INACTIVE")
            old = convert.staff_to_proto(staff).roles
            if ",".join(roles) == staff.roles:
                return convert.staff_to_proto(staff)
            staff.roles = ",".join(roles)
            session.add(staff)
            out = convert.staff_to_proto(staff)
            emit(session, subject=ROLES_CHANGED,
                 message=events_pb2.StaffRolesChanged(staff=out, old_roles=old),
                 about=staff.id, now=now)
        await self.announce(staff.id, True, roles, now)
        return out

    async def announce(self, staff_id: str, active: bool, roles: list[str],
                       changed: datetime) -> None:
        """Tell every service now (best effort: the directory's consumer of the event writes
        the same entry again, retried until it lands)."""
        if self.publish is None:
            return
        try:
            await self.publish(staff_id, active, roles, changed)
        except Exception:
            pass  # the event consumer delivers it

    # ---- services and keys ---------------------------------------------------------------

    async def issue_service_token(
        self, req: identity_pb2.IssueServiceTokenRequest
    ) -> identity_pb2.IssueServiceTokenResponse:
        v = Violations()
        v.check(req.service in SERVICE_NAMES, "service", "unknown service")
        v.check(bool(req.credential), "credential", "required")
        v.raise_if_any()
        expected = service_credential(self.service_secret, req.service)
        if not hmac.compare_digest(expected, req.credential):
            await self._audit(f"svc:{req.service}", "IssueServiceToken", req.service,
                              "WRONG_CREDENTIAL")
            raise Unauthenticated("service credential not valid", reason="CREDENTIAL_INVALID")
        now = wall_now()
        token = self.keys.signer().issue(f"svc:{req.service}",
                                         service_principal_roles(req.service), now,
                                         self.access_ttl)
        return identity_pb2.IssueServiceTokenResponse(token=token,
                                                      expire_time=ts(now + self.access_ttl))

    async def list_signing_keys(self) -> identity_pb2.ListSigningKeysResponse:
        """Read from the database each time: a rotation or retirement made by any replica
        (or the operator command) is what every service fetches next."""
        await self.keys.reload()
        return identity_pb2.ListSigningKeysResponse(jwks=self.keys.jwks())


__all__ = ["DEACTIVATED", "ROLES_CHANGED", "Identity", "Outcome"]
