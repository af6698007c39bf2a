"""Ed25519 signing keys and their public JWK form (RFC 8037), for access tokens.

Only the directory keeps private keys (in its database); every service verifies with the
public half, published as a JWKS document (`{"keys": [jwk, ...]}`).
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ALGORITHM = "EdDSA"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass(frozen=True)
class SigningKey:
    """One Ed25519 key pair; kid is the RFC 7638 thumbprint of its public JWK (43 chars)."""

    private: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_pem(cls, pem: str) -> SigningKey:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("not an Ed25519 private key")
        return cls(key)

    def pem(self) -> str:
        return self.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()

    @property
    def x(self) -> str:
        return _b64(self.private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw))

    @property
    def kid(self) -> str:
        canonical = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": self.x},
                               separators=(",", ":"), sort_keys=True)
        return _b64(hashlib.sha256(canonical.encode()).digest())

    def public_jwk(self) -> dict[str, str]:
        return {"kty": "OKP", "crv": "Ed25519", "x": self.x, "kid": self.kid,
                "alg": ALGORITHM, "use": "sig"}


def jwks(keys: list[dict[str, Any]]) -> str:
    """The JWKS document for these public JWKs, as JSON text."""
    return json.dumps({"keys": keys}, sort_keys=True)


def key_from_seed(seed: str) -> SigningKey:
    """A deterministic key, for tests and benchmarks only (anyone can derive it)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey as Key

    return SigningKey(Key.from_private_bytes(hashlib.sha256(seed.encode()).digest()))
