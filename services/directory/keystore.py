"""The directory's signing keys, kept in its database so restarts and replicas share them.

The newest unretired key signs; every unretired key is published (JWKS) so tokens signed just
before a rotation still verify. `branch rotate-signing-key` adds a key (retiring any older
than the previous one); `--retire-previous` retires all but the newest once the previous
key's tokens have expired (the access-token lifetime, minutes).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from services.common.auth import TokenSigner
from services.common.clock import Clock
from services.common.db import Database
from services.common.keys import SigningKey, jwks
from services.directory.models import SigningKeyRow


def new_key_row(now: datetime) -> SigningKeyRow:
    key = SigningKey.generate()
    return SigningKeyRow(kid=key.kid, private_pem=key.pem(),
                         public_jwk=json.dumps(key.public_jwk()), created_at=now)


class KeyStore:
    """The directory's SigningSide: its current signer and the published public keys."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock
        self._signer: TokenSigner | None = None
        self._jwks = jwks([])

    async def reload(self) -> None:
        """Read the unretired keys; make the first key if there is none."""
        for _ in range(3):
            async with self.db.read() as session:
                rows = list((await session.exec(
                    select(SigningKeyRow).where(col(SigningKeyRow.retired_at).is_(None))
                    .order_by(col(SigningKeyRow.created_at).desc(), col(SigningKeyRow.kid))
                )).all())
            if rows:
                self._signer = TokenSigner(SigningKey.from_pem(rows[0].private_pem))
                self._jwks = jwks([json.loads(r.public_jwk) for r in rows])
                return
            try:
                async with self.db.transaction() as session:
                    session.add(new_key_row(self.clock.now()))
            except IntegrityError:
                pass  # a replica made it first
        raise RuntimeError("no signing key could be loaded")

    def signer(self) -> TokenSigner:
        if self._signer is None:
            raise RuntimeError("key store not loaded")
        return self._signer

    def jwks(self) -> str:
        return self._jwks


async def rotate(db: Database, clock: Clock, *, retire_previous: bool) -> list[str]:
    """Rotate (a new key signs; the previous one stays published, older ones retire), or with
    retire_previous only retire every key but the newest. Returns the published key ids,
    newest first."""
    now = clock.now()
    query = (select(SigningKeyRow).where(col(SigningKeyRow.retired_at).is_(None))
             .order_by(col(SigningKeyRow.created_at).desc(), col(SigningKeyRow.kid)))
    async with db.transaction() as session:
        rows = list((await session.exec(query)).all())
        if not retire_previous:
            newest = rows[0].created_at if rows else now
            # strictly newest even under a frozen clock
            rows.insert(0, new_key_row(max(now, newest + timedelta(microseconds=1))))
            session.add(rows[0])
        keep = 1 if retire_previous else 2
        for row in rows[keep:]:
            row.retired_at = now
            session.add(row)
        return [r.kid for r in rows[:keep]]
